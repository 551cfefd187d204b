#!/usr/bin/env bash
# Regenerates the committed Swift code of the WAProto module from Protos/*.proto.
#
#   scripts/generate-protos.sh
#
# Idempotent. It
#   1. installs Debian's `protobuf-compiler` (protoc) if `protoc` is missing,
#   2. builds `protoc-gen-swift` once from swift-protobuf $SWIFT_PROTOBUF_VERSION
#      (cloned into $PROTOC_GEN_SWIFT_DIR, git-ignored) and reuses it afterwards,
#   3. runs protoc and replaces Sources/WAProto/*.pb.swift with the fresh output.
#
# The version must match the swift-protobuf dependency in Package.swift, because
# generated code checks the runtime library version at compile time.
#
# Environment overrides:
#   SWIFT_PROTOBUF_VERSION  tag to build the plugin from (default 1.39.0)
#   SWIFT_PROTOBUF_GIT      repository URL (default https://github.com/apple/swift-protobuf.git)
#   PROTOC_GEN_SWIFT_DIR    scratch directory for the plugin build (default .build-protoc)
#   PROTOC_GEN_SWIFT        use this protoc-gen-swift binary instead of building one
set -euo pipefail

SWIFT_PROTOBUF_VERSION="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
SWIFT_PROTOBUF_GIT="${SWIFT_PROTOBUF_GIT:-https://github.com/apple/swift-protobuf.git}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="$ROOT/Protos"
OUT_DIR="$ROOT/Sources/WAProto"
PROTOC_GEN_SWIFT_DIR="${PROTOC_GEN_SWIFT_DIR:-$ROOT/.build-protoc}"
PLUGIN_SRC="$PROTOC_GEN_SWIFT_DIR/swift-protobuf"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- 1. protoc ---------------------------------------------------------------
if ! command -v protoc >/dev/null 2>&1; then
    log "protoc not found; installing Debian package protobuf-compiler"
    command -v apt-get >/dev/null 2>&1 || die "protoc is missing and apt-get is not available; install protoc by hand"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available; install protobuf-compiler by hand"
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends protobuf-compiler; then
        log "apt-get install failed; running apt-get update and retrying"
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends protobuf-compiler
    fi
fi
log "using $(protoc --version) ($(command -v protoc))"

# --- 2. protoc-gen-swift -----------------------------------------------------
plugin_version() {
    # `protoc-gen-swift --version` prints "protoc-gen-swift 1.39.0".
    "$1" --version 2>/dev/null | awk '{print $NF}'
}

if [ -n "${PROTOC_GEN_SWIFT:-}" ]; then
    PLUGIN="$PROTOC_GEN_SWIFT"
    [ -x "$PLUGIN" ] || die "PROTOC_GEN_SWIFT=$PLUGIN is not executable"
else
    # Fresh clone unless the scratch checkout is already at the wanted tag.
    have_tag=""
    if [ -d "$PLUGIN_SRC/.git" ]; then
        have_tag="$(git -C "$PLUGIN_SRC" describe --tags --exact-match 2>/dev/null || true)"
    fi
    if [ "$have_tag" != "$SWIFT_PROTOBUF_VERSION" ]; then
        log "cloning swift-protobuf $SWIFT_PROTOBUF_VERSION into $PLUGIN_SRC"
        rm -rf "$PLUGIN_SRC"
        mkdir -p "$PROTOC_GEN_SWIFT_DIR"
        git -c advice.detachedHead=false clone --quiet --depth 1 \
            --branch "$SWIFT_PROTOBUF_VERSION" "$SWIFT_PROTOBUF_GIT" "$PLUGIN_SRC"
    fi

    BIN_DIR="$(swift build -c release --package-path "$PLUGIN_SRC" --show-bin-path)"
    PLUGIN="$BIN_DIR/protoc-gen-swift"
    if [ ! -x "$PLUGIN" ] || [ "$(plugin_version "$PLUGIN")" != "$SWIFT_PROTOBUF_VERSION" ]; then
        log "building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (release; takes a few minutes once)"
        swift build -c release --package-path "$PLUGIN_SRC" --product protoc-gen-swift
    fi
fi
got="$(plugin_version "$PLUGIN")"
[ "$got" = "$SWIFT_PROTOBUF_VERSION" ] || die "$PLUGIN reports version '$got', expected $SWIFT_PROTOBUF_VERSION"
log "using protoc-gen-swift $got ($PLUGIN)"

# --- 3. generate -------------------------------------------------------------
shopt -s nullglob
protos=("$PROTO_DIR"/*.proto)
[ ${#protos[@]} -gt 0 ] || die "no .proto files in $PROTO_DIR"

TMP_OUT="$(mktemp -d)"
trap 'rm -rf "$TMP_OUT"' EXIT

log "generating Swift for: ${protos[*]#"$ROOT/"}"
protoc \
    --plugin="protoc-gen-swift=$PLUGIN" \
    --proto_path="$PROTO_DIR" \
    --swift_out="$TMP_OUT" \
    --swift_opt=Visibility=Public \
    "${protos[@]}"

generated=("$TMP_OUT"/*.pb.swift)
[ ${#generated[@]} -gt 0 ] || die "protoc produced no .pb.swift files"

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.pb.swift
cp "${generated[@]}" "$OUT_DIR"/
# The hand-written placeholder is obsolete once generated code exists.
rm -f "$OUT_DIR/WAProto.swift"

for f in "${generated[@]}"; do
    log "wrote Sources/WAProto/$(basename "$f")"
done

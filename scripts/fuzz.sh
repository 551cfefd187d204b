#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of the WABinary module.
#
#   scripts/fuzz.sh [node] [frame]     (default: both)
#
# Environment:
#   FUZZ_SECONDS   seconds per target, passed to libFuzzer as -max_total_time (default 60)
#   FUZZ_WORK_DIR  where binaries, the growing corpus and crash artifacts go (default .build-fuzz)
#   FUZZ_OPT       swiftc optimisation flag (default -O; array bounds and overflow checks stay on)
#
# How it builds: the decoder and the frame reassembler use only the standard library, so each
# target is compiled by swiftc -sanitize=fuzzer,address -parse-as-library from its Fuzz/*.swift
# file plus every Sources/WABinary/*.swift file that does not import NIOCore or CompressNIO (the
# zlib frame unpacking lives in such a file and is left out). No SwiftPM build, no NIO. The
# seed corpus in Fuzz/corpus/<target> is read but never written; new inputs go to the work dir.
# A crash, leak or failed check makes libFuzzer stop, save the input under
# $FUZZ_WORK_DIR/artifacts-<target>/ and exit non-zero, and this script fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK_DIR:-$root/.build-fuzz}
opt=${FUZZ_OPT:--O}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(node frame message)
fi

sources=()
for file in "$root"/Sources/WABinary/*.swift; do
    if grep -Eq '^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)*((public|package|internal|private|fileprivate)[[:space:]]+)?import[[:space:]]+(struct[[:space:]]+|class[[:space:]]+|enum[[:space:]]+)?(NIO[A-Za-z]*|CompressNIO)\b' "$file"; then
        continue
    fi
    sources+=("$file")
done

mkdir -p "$work"
status=0
for target in "${targets[@]}"; do
    case "$target" in
        node) harness="$root/Fuzz/NodeDecoderFuzz.swift" ;;
        frame) harness="$root/Fuzz/FrameReassemblerFuzz.swift" ;;
        message) harness="$root/Fuzz/IncomingMessageFuzz.swift" ;;
        *) echo "fuzz.sh: unknown target '$target' (use node, frame or message)" >&2; exit 2 ;;
    esac
    extra=()
    if [ "$target" = message ]; then
        # The WhatsApp files the target reads, without their `import WABinary` (everything is one module here).
        for file in IncomingMessage.swift ProtobufFieldReader.swift; do
            sed '/^import WABinary$/d' "$root/Sources/WhatsApp/Messages/$file" > "$work/$file"
            extra+=("$work/$file")
        done
    fi
    binary="$work/$target-fuzzer"
    echo "== building $target fuzzer ($opt, ${#sources[@]} WABinary sources)"
    swiftc -sanitize=fuzzer,address -parse-as-library "$opt" -g \
        -swift-version 6 -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility \
        -module-name WABinaryFuzz "${sources[@]}" "${extra[@]}" "$harness" -o "$binary"

    corpus="$work/corpus-$target"
    artifacts="$work/artifacts-$target/"
    mkdir -p "$corpus" "$artifacts"
    echo "== running $target fuzzer for ${seconds}s"
    if "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$corpus" "$root/Fuzz/corpus/$target"; then
        echo "== $target: no failure in ${seconds}s"
    else
        echo "== $target: FAILED (inputs in $artifacts)" >&2
        status=1
    fi
done
exit $status

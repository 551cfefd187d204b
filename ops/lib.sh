# Shared helpers for ops/run and ops/test. Source it; do not run it.

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages named, skipping those already installed (idempotent).
ensure_apt_packages() {
    local missing=()
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "ops: installing ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# The system libraries wahost links (the -dev packages carry the pkg-config files SwiftPM reads).
# ca-certificates: the system CA bundle the WhatsApp socket's TLS trusts (WhatsAppTLS.system).
BUILD_PACKAGES=(pkg-config libargon2-dev libsignal-protocol-c-dev libqrencode-dev libsqlite3-dev zlib1g-dev libssl-dev ca-certificates)

# Fails with a clear message when the Swift toolchain is missing (Debian does not package Swift 6).
require_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        echo "ops: swift (6.x) is not on PATH; install the Swift toolchain from swift.org first" >&2
        exit 1
    fi
}

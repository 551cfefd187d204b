#!/usr/bin/env bash
# Checks the deployment files under ops/ (docs/deployment.md) without building or starting anything:
#   - every YAML file under ops/k8s/ and ops/compose.yaml parses (Python's yaml module, PyYAML);
#     every Kubernetes document has apiVersion, kind and metadata.name; compose.yaml has services;
#   - ops/systemd/wahost.service passes `systemd-analyze verify` with no complaint at all (ExecStart's binary is
#     swapped for /bin/true in a temporary copy, since /usr/local/bin/wahost is not installed here);
#   - ops/pm2/ecosystem.config.js loads in node and defines at least one app;
#   - ops/container/Containerfile has a `FROM … AS build` stage, a USER that is not root, HEALTHCHECK and EXPOSE.
#
#   scripts/check-deploy.sh
#
# Environment: WAHOST_TEST_PYTHON (default python3) must import yaml (Debian python3-yaml, PyPI pyyaml).
# Without systemd-analyze or node the matching check is skipped with a message, unless
# WAHOST_TEST_REQUIRE_EXTERNAL=1 (ops/test sets it), which makes a missing tool a failure.
# Prints one line per check and exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${WAHOST_TEST_PYTHON:-python3}
REQUIRE_EXTERNAL=${WAHOST_TEST_REQUIRE_EXTERNAL:-0}
failures=0

ok() { echo "check-deploy: ok   $*"; }
bad() {
    echo "check-deploy: FAIL $*" >&2
    failures=$((failures + 1))
}
# A missing external tool: a failure under WAHOST_TEST_REQUIRE_EXTERNAL=1, a skip otherwise.
missing_tool() {
    if [ "$REQUIRE_EXTERNAL" = "1" ]; then
        bad "$1 is not installed (needed for $2; WAHOST_TEST_REQUIRE_EXTERNAL=1)"
    else
        echo "check-deploy: skip $2: $1 is not installed"
    fi
}

# --- YAML: ops/k8s/*.yaml and ops/compose.yaml ----------------------------------------------------------------
mapfile -t k8s_files < <(find ops/k8s -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
if [ "${#k8s_files[@]}" -eq 0 ]; then bad "no YAML files under ops/k8s"; fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    bad "python ($PYTHON) not found; set WAHOST_TEST_PYTHON to a Python 3 with PyYAML"
elif ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
    bad "$PYTHON cannot import yaml: install PyYAML (Debian: apt-get install python3-yaml; PyPI: pip install pyyaml) or set WAHOST_TEST_PYTHON"
else
    if ! "$PYTHON" - ops/compose.yaml "${k8s_files[@]}" <<'PY'; then
import sys
import yaml

compose, k8s = sys.argv[1], sys.argv[2:]
failed = False

def fail(message):
    global failed
    failed = True
    print(f"check-deploy: FAIL {message}", file=sys.stderr)

def load_all(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return [document for document in yaml.safe_load_all(handle) if document is not None]
    except (OSError, yaml.YAMLError) as error:
        fail(f"{path}: not valid YAML: {error}")
        return None

for path in k8s:
    documents = load_all(path)
    if documents is None:
        continue
    if not documents:
        fail(f"{path}: no YAML documents")
        continue
    problems = 0
    for index, document in enumerate(documents, start=1):
        where = f"{path}: document {index}"
        if not isinstance(document, dict):
            fail(f"{where} is not a mapping")
            problems += 1
            continue
        kind = document.get("kind")
        for key in ("apiVersion", "kind"):
            if not isinstance(document.get(key), str) or not document.get(key):
                fail(f"{where} has no {key}")
                problems += 1
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata.get("name"):
            fail(f"{where} ({kind or 'no kind'}) has no metadata.name")
            problems += 1
    if problems == 0:
        names = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
        print(f"check-deploy: ok   {path}: {names}")

documents = load_all(compose)
if documents is not None:
    if len(documents) != 1 or not isinstance(documents[0], dict):
        fail(f"{compose}: expected one YAML mapping")
    elif not isinstance(documents[0].get("services"), dict) or not documents[0]["services"]:
        fail(f"{compose}: has no services")
    else:
        print(f"check-deploy: ok   {compose}: services {', '.join(documents[0]['services'])}")

sys.exit(1 if failed else 0)
PY
        failures=$((failures + 1))
    fi
fi

# --- systemd unit -------------------------------------------------------------------------------------------
UNIT=ops/systemd/wahost.service
if [ ! -f "$UNIT" ]; then
    bad "$UNIT is missing"
elif ! command -v systemd-analyze >/dev/null 2>&1; then
    missing_tool systemd-analyze "$UNIT (apt-get install systemd)"
elif ! grep -q '^ExecStart=/usr/local/bin/wahost serve' "$UNIT"; then
    bad "$UNIT: ExecStart does not run /usr/local/bin/wahost serve"
else
    unit_dir=$(mktemp -d)
    # The only change: the binary, which is not installed here (verify checks that it is executable).
    sed 's#^ExecStart=/usr/local/bin/wahost #ExecStart=/bin/true #' "$UNIT" >"$unit_dir/wahost.service"
    # verify exits 0 on some complaints (unknown keys, bad values); any output is a failure.
    if output=$(cd "$unit_dir" && systemd-analyze verify ./wahost.service 2>&1) && [ -z "$output" ]; then
        ok "$UNIT: systemd-analyze verify"
    else
        bad "$UNIT: systemd-analyze verify complained:"
        sed 's/^/    /' <<<"$output" >&2
    fi
    rm -rf "$unit_dir"
fi

# --- PM2 ----------------------------------------------------------------------------------------------------
PM2=ops/pm2/ecosystem.config.js
if [ ! -f "$PM2" ]; then
    bad "$PM2 is missing"
elif ! command -v node >/dev/null 2>&1; then
    missing_tool node "$PM2 (apt-get install nodejs)"
elif output=$(node -e 'const c=require(process.argv[1]); if(!c.apps||!c.apps.length) process.exit(1)' "$PWD/$PM2" 2>&1); then
    ok "$PM2: loads in node $(node --version), defines apps"
else
    bad "$PM2: does not load in node or defines no apps"
    [ -z "$output" ] || sed 's/^/    /' <<<"$output" >&2
fi

# --- Containerfile ------------------------------------------------------------------------------------------
CONTAINERFILE=ops/container/Containerfile
if [ ! -f "$CONTAINERFILE" ]; then
    bad "$CONTAINERFILE is missing"
else
    # Instructions only: comments dropped, continuation lines joined.
    instructions=$(sed -e '/^[[:space:]]*#/d' "$CONTAINERFILE" | sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}')
    container_ok=1
    if ! grep -qiE '^[[:space:]]*FROM[[:space:]]+[^[:space:]]+[[:space:]]+AS[[:space:]]+build[[:space:]]*$' <<<"$instructions"; then
        bad "$CONTAINERFILE: no 'FROM … AS build' stage"
        container_ok=0
    fi
    last_user=$(grep -iE '^[[:space:]]*USER[[:space:]]' <<<"$instructions" | tail -n 1 | awk '{print $2}')
    if [ -z "$last_user" ]; then
        bad "$CONTAINERFILE: no USER (the image would run as root)"
        container_ok=0
    elif [[ "${last_user%%:*}" == root || "${last_user%%:*}" == 0 ]]; then
        bad "$CONTAINERFILE: the last USER is root ($last_user)"
        container_ok=0
    fi
    for instruction in HEALTHCHECK EXPOSE; do
        if ! grep -qiE "^[[:space:]]*$instruction[[:space:]]" <<<"$instructions"; then
            bad "$CONTAINERFILE: no $instruction"
            container_ok=0
        fi
    done
    [ "$container_ok" = 0 ] || ok "$CONTAINERFILE: build stage, USER $last_user, HEALTHCHECK, EXPOSE"
fi

if [ "$failures" -gt 0 ]; then
    echo "check-deploy: $failures check(s) failed" >&2
    exit 1
fi
echo "check-deploy: all deployment files pass"

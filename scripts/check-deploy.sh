#!/usr/bin/env bash
# Checks the deployment files under ops/ (docs/deployment.md) without building or starting anything:
#   - every YAML file under ops/k8s/ and ops/compose.yaml parses (Python's yaml module, PyYAML);
#     every Kubernetes document has apiVersion, kind and metadata.name; compose.yaml has services;
#   - the cluster shape: each compose node (a service with WAHOST_DATABASE_URL) has its own data volume, node id and
#     advertise URL, the master key, credentials in the database, and no volume shared with another node or mounted
#     inside the data directory; no ReadWriteMany claim under ops/k8s/; StatefulSet/wahost has an emptyDir data
#     directory, the pod name as node id, a per-pod advertise URL, the key and database URL from a Secret,
#     /readyz and /healthz probes; a PodDisruptionBudget; its headless Service publishes not-ready pods;
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
failures = 0
parsed = {}  # path -> its documents ([] when it does not parse)
DATA_DIR = "/var/lib/wahost"
K8S_DIR = "ops/k8s"

def fail(message):
    global failures
    failures += 1
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
    parsed[path] = documents or []
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
parsed[compose] = documents or []
if documents is not None:
    if len(documents) != 1 or not isinstance(documents[0], dict):
        fail(f"{compose}: expected one YAML mapping")
    elif not isinstance(documents[0].get("services"), dict) or not documents[0]["services"]:
        fail(f"{compose}: has no services")
    else:
        print(f"check-deploy: ok   {compose}: services {', '.join(documents[0]['services'])}")

# --- The cluster shape (docs/deployment.md): nodes share PostgreSQL and the master key, never a data directory -----

def env_map(environment):
    """A compose service's environment as a dict, from either the mapping or the list form."""
    if isinstance(environment, dict):
        return {str(k): ("" if v is None else str(v)) for k, v in environment.items()}
    if isinstance(environment, list):
        return dict((item.split("=", 1) + [""])[:2] for item in environment if isinstance(item, str))
    return {}

def compose_mount(volume):
    """(source, target) of a compose volume in short ("src:dst[:mode]") or long ({source, target}) form."""
    if isinstance(volume, dict):
        return volume.get("source"), volume.get("target")
    parts = str(volume).split(":")
    return (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])

# Compose: each wahost node its own data, its own advertise URL, no volume shared between nodes.
section_start = failures
compose_file = next((d for d in parsed[compose] if isinstance(d, dict)), {})
services = compose_file.get("services") if isinstance(compose_file.get("services"), dict) else {}
nodes = {name: service for name, service in services.items()
         if isinstance(service, dict) and "WAHOST_DATABASE_URL" in env_map(service.get("environment"))}
if len(nodes) < 2:
    fail(f"{compose}: expected at least two wahost nodes (services with WAHOST_DATABASE_URL), found {len(nodes)}")
sources, advertised, node_ids = {}, {}, {}
for name, service in nodes.items():
    env = env_map(service.get("environment"))
    for key in ("WAHOST_MASTER_KEY", "WAHOST_NODE_ID", "WAHOST_ADVERTISE_URL"):
        if not env.get(key):
            fail(f"{compose}: {name} has no {key}")
    if env.get("WAHOST_DATABASE_URL", "").split("://")[0] not in ("postgres", "postgresql"):
        fail(f"{compose}: {name}'s WAHOST_DATABASE_URL is not postgres://")
    if env.get("WAHOST_CREDENTIALS", "database") != "database":
        fail(f"{compose}: {name} sets WAHOST_CREDENTIALS={env['WAHOST_CREDENTIALS']}; cluster nodes keep credentials in the database")
    if env.get("WAHOST_ADVERTISE_URL"):
        advertised.setdefault(env["WAHOST_ADVERTISE_URL"], []).append(name)
    if env.get("WAHOST_NODE_ID"):
        node_ids.setdefault(env["WAHOST_NODE_ID"], []).append(name)
    has_data = False
    for volume in service.get("volumes") or []:
        source, target = compose_mount(volume)
        if target == DATA_DIR:
            has_data = True
        elif isinstance(target, str) and target.startswith(DATA_DIR + "/"):
            fail(f"{compose}: {name} mounts {source} at {target}; nodes share no part of the data directory")
        if source and not source.startswith((".", "/", "~")):
            sources.setdefault(source, []).append(name)
    tmpfs = service.get("tmpfs") or []
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    if not has_data and not any(str(entry).split(":")[0] == DATA_DIR for entry in tmpfs):
        fail(f"{compose}: {name} has no volume or tmpfs at {DATA_DIR} (its root file system is read-only)")
for what, table in (("volume", sources), ("WAHOST_ADVERTISE_URL", advertised), ("WAHOST_NODE_ID", node_ids)):
    for value, users in table.items():
        if len(users) > 1:
            fail(f"{compose}: {what} {value} is shared by {', '.join(sorted(users))}")
if failures == section_start:
    print(f"check-deploy: ok   {compose}: {len(nodes)} nodes, each its own data volume, node id and advertise URL")

# Kubernetes: no ReadWriteMany claim; the wahost StatefulSet's data directory an emptyDir.
section_start = failures
documents = {path: [d for d in parsed[path] if isinstance(d, dict)] for path in k8s}

def claim_specs(document):
    if document.get("kind") == "PersistentVolumeClaim":
        yield document.get("spec") or {}
    for template in (document.get("spec") or {}).get("volumeClaimTemplates") or []:
        yield (template or {}).get("spec") or {}

for path, docs in documents.items():
    for document in docs:
        name = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
        for spec in claim_specs(document):
            if "ReadWriteMany" in (spec.get("accessModes") or []):
                fail(f"{path}: {name} claims a ReadWriteMany volume; wahost nodes share no storage")

everything = [(path, d) for path, docs in documents.items() for d in docs]
wahost_sets = [(path, d) for path, d in everything
               if d.get("kind") == "StatefulSet" and (d.get("metadata") or {}).get("name") == "wahost"]
if len(wahost_sets) != 1:
    fail(f"{K8S_DIR}: expected one StatefulSet/wahost, found {len(wahost_sets)}")
else:
    path, statefulset = wahost_sets[0]
    pod = ((statefulset.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = [c for c in pod.get("containers") or [] if isinstance(c, dict) and c.get("name") == "wahost"]
    volumes = {v.get("name"): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
    if len(containers) != 1:
        fail(f"{path}: StatefulSet/wahost has no container 'wahost'")
    else:
        container = containers[0]
        env = {e.get("name"): e for e in container.get("env") or [] if isinstance(e, dict)}
        node_id = ((env.get("WAHOST_NODE_ID") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if node_id != "metadata.name":
            fail(f"{path}: WAHOST_NODE_ID is not the pod name (fieldRef metadata.name)")
        if "$(WAHOST_NODE_ID)" not in str((env.get("WAHOST_ADVERTISE_URL") or {}).get("value", "")):
            fail(f"{path}: WAHOST_ADVERTISE_URL does not name the pod ($(WAHOST_NODE_ID))")
        for key in ("WAHOST_MASTER_KEY", "WAHOST_DATABASE_URL"):
            if "secretKeyRef" not in ((env.get(key) or {}).get("valueFrom") or {}):
                fail(f"{path}: {key} does not come from a Secret")
        if (env.get("WAHOST_CREDENTIALS") or {}).get("value", "database") != "database":
            fail(f"{path}: WAHOST_CREDENTIALS is not 'database'")
        for probe, wanted in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            if ((container.get(probe) or {}).get("httpGet") or {}).get("path") != wanted:
                fail(f"{path}: {probe} does not GET {wanted}")
        data = [m.get("name") for m in container.get("volumeMounts") or [] if isinstance(m, dict) and m.get("mountPath") == DATA_DIR]
        if len(data) != 1:
            fail(f"{path}: nothing is mounted at {DATA_DIR} (the root file system is read-only)")
        elif "emptyDir" not in (volumes.get(data[0]) or {}):
            fail(f"{path}: the volume '{data[0]}' at {DATA_DIR} is not an emptyDir; nodes keep nothing there")
    if not any(d.get("kind") == "PodDisruptionBudget" for _, d in everything):
        fail(f"{K8S_DIR}: no PodDisruptionBudget")
    governing = (statefulset.get("spec") or {}).get("serviceName")
    services = [d for _, d in everything if d.get("kind") == "Service" and (d.get("metadata") or {}).get("name") == governing]
    if len(services) != 1 or (services[0].get("spec") or {}).get("clusterIP") != "None":
        fail(f"{K8S_DIR}: no headless Service '{governing}' (the advertise URLs' names)")
    elif (services[0].get("spec") or {}).get("publishNotReadyAddresses") is not True:
        fail(f"{K8S_DIR}: Service/{governing} does not publish not-ready pods; a restoring pod's sessions could not be forwarded to")
if failures == section_start:
    print(f"check-deploy: ok   {K8S_DIR}: no ReadWriteMany claim; StatefulSet/wahost on an emptyDir, node id = pod name, advertise URL per pod")

sys.exit(1 if failures else 0)
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

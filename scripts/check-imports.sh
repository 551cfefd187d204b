#!/usr/bin/env bash
# Checks every `import` in Sources/<Module>/**/*.swift against scripts/import-allow-list.txt, which mirrors the module
# rules of DESIGN.md's module table. SwiftPM only stops a target importing a package target it does not declare;
# this also stops one that arrives transitively (AdminAPI importing WhatsApp through SessionPool) and any back-edge.
#
#   scripts/check-imports.sh [SOURCES_DIR]     (default: Sources)
#
# Prints `file:line: Module imports X, which is not on its allow-list` for each offence and exits 1; exits 0 when
# every import is allowed. A module directory without an allow-list line is an offence too.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCES=${1:-Sources}
ALLOW_LIST=scripts/import-allow-list.txt

mapfile -d '' files < <(find "$SOURCES" -name '*.swift' -print0 | sort -z)
status=0
awk -v sources="$SOURCES" -v allowlist="$ALLOW_LIST" '
BEGIN {
    while ((getline line < allowlist) > 0) {
        sub(/#.*/, "", line)
        if (line !~ /:/) continue
        module = line; sub(/:.*/, "", module); gsub(/[ \t]/, "", module)
        rest = line; sub(/^[^:]*:/, "", rest)
        known[module] = 1
        n = split(rest, names, /[ \t]+/)
        for (i = 1; i <= n; i++) if (names[i] != "") allowed[module, names[i]] = 1
    }
    failures = 0
}
FNR == 1 {
    path = FILENAME; sub("^" sources "/", "", path)
    module = path; sub(/\/.*/, "", module)
    if (!(module in known) && !(module in reported)) {
        printf "%s: module %s has no line in %s\n", sources "/" module, module, allowlist
        reported[module] = 1; failures++
    }
}
# import X, @testable import X, public import X, import struct X.Y, import X.Submodule
/^[ \t]*(@[A-Za-z_]+(\([^)]*\))?[ \t]+)*((public|package|internal|fileprivate|private)[ \t]+)?import[ \t]+/ {
    text = $0
    sub(/^[ \t]*(@[A-Za-z_]+(\([^)]*\))?[ \t]+)*((public|package|internal|fileprivate|private)[ \t]+)?import[ \t]+/, "", text)
    sub(/^(class|struct|enum|protocol|func|var|let|typealias|actor)[ \t]+/, "", text)
    imported = text; sub(/[^A-Za-z0-9_].*/, "", imported)
    if (imported == "" || (module, imported) in allowed || ("*", imported) in allowed) next
    if (module in known) {
        printf "%s:%d: %s imports %s, which is not on its allow-list (%s): %s\n", FILENAME, FNR, module, imported, allowlist, $0
        failures++
    }
}
END {
    if (failures > 0) { printf "check-imports: %d disallowed import(s)\n", failures; exit 1 }
}' "${files[@]}" || status=$?
[ "$status" -eq 0 ] || exit 1
echo "check-imports: every import in $SOURCES is on its module's allow-list"

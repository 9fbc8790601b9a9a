#!/bin/sh
# check_exports.sh PLUGIN.so... — every plugin must export exactly one
# symbol, the data object tq_plugin_entry_v1 (plugins/tq-plugin.map and
# hidden visibility make it so). Anything else exported can clash with the
# core or another plugin, and means the ABI leaks.
#
# Plugins never link the core either: an undefined tq_* symbol means one
# reached for a core function instead of the tq_host table (-Wl,-z,defs
# catches that at link time, but is off in sanitizer builds).
#
# readelf --dyn-syms is generic ELF, so this also checks cross builds.
# Undefined entries (imports such as malloc) and the null symbol at index 0
# are not exports; neither are LOCAL entries (section symbols some linkers
# put in .dynsym).
set -u
status=0
if [ $# -eq 0 ]; then
    echo "usage: $0 PLUGIN.so..." >&2
    exit 2
fi
for so in "$@"; do
    if ! syms=$(readelf --dyn-syms -W "$so" 2>&1); then
        echo "FAIL $so: readelf failed: $syms"
        status=1
        continue
    fi
    # Columns: Num: Value Size Type Bind Vis Ndx Name
    exports=$(printf '%s\n' "$syms" | awk '
        $1 ~ /^[0-9]+:$/ && $7 != "UND" && $5 != "LOCAL" && $8 != "" {
            name = $8; sub(/@.*/, "", name); print $4 " " name }')
    core_refs=$(printf '%s\n' "$syms" | awk '
        $1 ~ /^[0-9]+:$/ && $7 == "UND" && $8 ~ /^tq_/ { print $8 }')
    if [ "$exports" != "OBJECT tq_plugin_entry_v1" ]; then
        echo "FAIL $so: exports must be exactly 'OBJECT tq_plugin_entry_v1', found:"
        printf '%s\n' "${exports:-(nothing)}" | sed 's/^/       /'
        status=1
    elif [ -n "$core_refs" ]; then
        echo "FAIL $so: refers to core symbols (use the tq_host table):"
        printf '%s\n' "$core_refs" | sed 's/^/       /'
        status=1
    else
        echo "ok   $so"
    fi
done
exit $status

#!/usr/bin/env bash
# compare-xml.sh NATIVE.xml OURS.xml: do two libvirt domain XMLs describe the same guest?
# NATIVE is libvirt's own translation of our xl.cfg (`virsh domxml-from-native xen-xl`),
# OURS the builder's <name>.xen.xml. Compared: name, memory (in KiB), vcpus, OS type, kernel,
# ramdisk, cmdline, the disk's source and target, the NIC's MAC and bridge. Prints each field
# and exits 1 if any differs or is missing from either.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: compare-xml.sh NATIVE.xml OURS.xml" >&2; exit 2; }
command -v xmllint >/dev/null || { echo "compare-xml: needs xmllint (libxml2-utils)" >&2; exit 2; }

get() { xmllint --xpath "string($2)" "$1" 2>/dev/null || true; }

# memory in KiB, whatever unit the file uses
mem_kib() {
    local v u
    v=$(get "$1" /domain/memory)
    u=$(get "$1" /domain/memory/@unit)
    case "${u:-KiB}" in
    KiB | k | K) echo "$v" ;;
    MiB | M) echo $((v * 1024)) ;;
    GiB | G) echo $((v * 1024 * 1024)) ;;
    b | bytes) echo $((v / 1024)) ;;
    *) echo "unit $u?" ;;
    esac
}

fields=(
    "name|/domain/name"
    "vcpus|/domain/vcpu"
    "os type|/domain/os/type"
    "kernel|/domain/os/kernel"
    "ramdisk|/domain/os/initrd"
    "cmdline|/domain/os/cmdline"
    "disk source|concat(/domain/devices/disk[1]/source/@dev, /domain/devices/disk[1]/source/@file)"
    "disk target|/domain/devices/disk[1]/target/@dev"
    "mac|/domain/devices/interface[1]/mac/@address"
    "bridge|/domain/devices/interface[1]/source/@bridge"
)
bad=0
check() {
    local what=$1 a=$2 b=$3
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        printf 'DIFF  %-12s libvirt: %s | ours: %s\n' "$what" "${a:-(none)}" "${b:-(none)}"
        bad=1
    else
        printf 'same  %-12s %s\n' "$what" "$a"
    fi
}
check memory_kib "$(mem_kib "$1")" "$(mem_kib "$2")"
for f in "${fields[@]}"; do
    check "${f%%|*}" "$(get "$1" "${f#*|}")" "$(get "$2" "${f#*|}")"
done
exit $bad

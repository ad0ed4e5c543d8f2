# shellcheck shell=bash
# Shared helpers for the nested-Xen test scripts (sourced, not run).
#
# Pinned versions: PV live migration needs a hypervisor built with shadow
# paging; Debian's 4.17.7 security update is built without it and `xl migrate`
# then fails with "Failed to enable logdirty: 95". 4.17.5+72 from bookworm
# main has it.

XEN_VERSION=${XEN_VERSION:-4.17.5+72-g01140da4e8-1}
XEN_SERIES=4.17
XEN_PACKAGES=(
    xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
    libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1
    libxengnttab1 libxenhypfs1 libxenmisc4.17 libxenstore4 libxentoolcore1
    libxentoollog1
)

XEN_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$XEN_TESTS_DIR/../.." && pwd)
CACHE_DIR=${IMGBUILD_CACHE:-/var/cache/imgbuild}/xen
XEN_DEBS_DIR=${IMGBUILD_XEN_DEBS:-$REPO_ROOT/../shared/debs/xen-$XEN_SERIES.5}

_t0=$(date +%s.%N)

log() { printf '[xen-test %6.1fs] %s\n' "$(echo "$(date +%s.%N) - $_t0" | bc)" "$*" >&2; }
die() { printf '[xen-test] ERROR: %s\n' "$*" >&2; exit 1; }

# Current stage name, printed by the failure handler of run-nested.sh.
STAGE=setup
stage() { STAGE=$1; log "stage: $1"; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (needs network namespaces, taps and debootstrap)"; }

# Installs the outer machine's tools when missing (CI starts from a fresh Debian 12).
ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v ssh >/dev/null || missing+=(openssh-client)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v bc >/dev/null || missing+=(bc)
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    command -v zstd >/dev/null || missing+=(zstd)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
}

# Newest Debian 6.1 generic kernel package name (linux-image-6.1.0-NN-amd64).
dom0_kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1
}

# Prints the last lines of a log file, indented, for failure reports.
tail_log() {
    local file=$1 n=${2:-40}
    if [ -f "$file" ]; then
        echo "---- last $n lines of $file ----" >&2
        tail -n "$n" "$file" | sed 's/\r$//; s/^/    /' >&2
        echo "---- end of $file ----" >&2
    else
        echo "(no log at $file)" >&2
    fi
}

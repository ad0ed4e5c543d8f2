# shellcheck shell=bash
# Two real libvirtd daemons (QEMU driver) on this machine, as two libvirt hosts: each in a
# mount and UTS namespace of its own (its own /etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, host UUID and hostname: libvirt refuses to migrate a
# domain to the host it runs on), both in one network namespace this script creates, with
# the bridge the builder's QEMU XML names (virbr0) and one address per daemon for the
# migration stream. Sourced by run-qemu.sh.
#
#   namespace $LV_NS: virbr0 10.99.0.1/24 (the guest's gateway), .101 (daemon a), .102 (b)
#   daemon X: socket $LV_RUN/X/sock/libvirt-sock -> URI qemu+unix:///system?socket=…
#
# Everything is in $LV_RUN; QEMUs are ended through libvirt, then by their pid files.

LV_NS=imglv-$$
LV_RUN=${LV_RUN:-$(mktemp -d /var/tmp/imglv.XXXXXX)}
LV_PIDS=()
LV_NAMES=()

lv_die() { echo "libvirt test: $*" >&2; exit 1; }

lv_uri() { echo "qemu+unix:///system?socket=$LV_RUN/$1/sock/libvirt-sock"; }

# The daemons log each domain under the machine's /var/log/libvirt/qemu (where the runner
# reads the console); the files this run adds there are removed at the end.
LV_LOGS_BEFORE=$(ls /var/log/libvirt/qemu 2>/dev/null || true)

lv_network_up() {
    ip netns add "$LV_NS" || lv_die "ip netns add $LV_NS failed (needs root)"
    ip -n "$LV_NS" link set lo up
    ip -n "$LV_NS" link add virbr0 type bridge stp_state 0 forward_delay 0
    ip -n "$LV_NS" addr add 10.99.0.1/24 dev virbr0
    ip -n "$LV_NS" addr add 10.99.0.101/24 dev virbr0
    ip -n "$LV_NS" addr add 10.99.0.102/24 dev virbr0
    ip -n "$LV_NS" link set virbr0 up
}

# lv_start X ADDR SHARED: daemon X, migration stream on ADDR; SHARED: the directory of the
# guest's disk, which both daemons see (one machine) but libvirt cannot know is shared: its
# qemu.conf says so (shared_filesystems), instead of `virsh migrate --unsafe`.
lv_start() {
    local x=$1 addr=$2 shared=$3 d=$LV_RUN/$1 uuid
    mkdir -p "$d"/{etc/qemu,run,lib,cache,sock}
    uuid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$d/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$d/sock"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$uuid"
log_outputs = "3:file:$d/libvirtd.log"
EOF
    cat >"$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_host = "$addr"
migration_address = "$addr"
shared_filesystems = [ "$shared" ]
EOF
    : >"$d/etc/libvirt.conf"
    # The daemon's own view: its directories over the machine's, its hostname.
    ip netns exec "$LV_NS" unshare --mount --uts --propagation private sh -c '
        d=$1; hostname "lv-$2"
        mount --bind "$d/etc" /etc/libvirt
        mount -t tmpfs -o mode=0755 tmpfs /run
        mkdir /run/libvirt
        mount --bind "$d/run" /run/libvirt
        mount --bind "$d/lib" /var/lib/libvirt
        mount --bind "$d/cache" /var/cache/libvirt
        exec libvirtd --config "$d/etc/libvirtd.conf" --pid-file "$d/libvirtd.pid"' sh "$d" "$x" >"$d/stdout.log" 2>&1 &
    LV_PIDS+=($!)
    LV_NAMES+=("$x")
    local i
    for i in $(seq 1 100); do
        [ -S "$d/sock/libvirt-sock" ] && virsh -q -c "$(lv_uri "$x")" version >/dev/null 2>&1 && return 0
        kill -0 "${LV_PIDS[-1]}" 2>/dev/null || { cat "$d/stdout.log" "$d/libvirtd.log" >&2; lv_die "libvirtd $x exited"; }
        sleep 0.2
    done
    cat "$d/stdout.log" >&2
    lv_die "libvirtd $x did not answer on $d/sock/libvirt-sock"
}

# Ends every domain of our daemons (through libvirt, then by QEMU pid file), the daemons
# (by PID), the namespace and the run directory.
lv_cleanup() {
    local x dom pidf pid
    for x in "${LV_NAMES[@]}"; do
        for dom in $(virsh -q -c "$(lv_uri "$x")" list --all --name 2>/dev/null); do
            virsh -q -c "$(lv_uri "$x")" destroy "$dom" >/dev/null 2>&1 || true
            virsh -q -c "$(lv_uri "$x")" undefine "$dom" >/dev/null 2>&1 || true
        done
    done
    for pidf in "$LV_RUN"/*/run/qemu/*.pid; do
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf" 2>/dev/null) || continue
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${LV_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${LV_PIDS[@]}"; do
        for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    LV_PIDS=()
    ip netns del "$LV_NS" 2>/dev/null || true
    local f
    for f in /var/log/libvirt/qemu/*; do
        [ -e "$f" ] || continue
        printf '%s\n' "$LV_LOGS_BEFORE" | grep -qxF "${f##*/}" || rm -f "$f"
    done
    if [ -z "${LV_KEEP:-}" ]; then rm -rf "$LV_RUN"; else echo "libvirt test: kept $LV_RUN" >&2; fi
}

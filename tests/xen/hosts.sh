# shellcheck shell=bash
# Two nested Xen hosts as QEMU (TCG) VMs on one bridge inside a network
# namespace this script creates. Sourced by run-nested.sh / up.sh after lib.sh.
#
#   outer namespace $NS:  bridge xbr0 ($OUTER_ADDR) -- xtap1 -- host 1 eth0 -> xenbr0 ($HOST1_ADDR)
#                                               `-- xtap2 -- host 2 eth0 -> xenbr0 ($HOST2_ADDR)
# Guests' vifs join each dom0's xenbr0, so the namespace reaches them on L2.
# Only this namespace and loopback see any traffic.

NS=imgxen-$$
RUN_DIR=${IMGXEN_RUN_DIR:-${TMPDIR:-/tmp}/imgxen-$$}
NET_PREFIX=${IMGXEN_NET_PREFIX:-10.99.0}
NET_LEN=24
OUTER_ADDR=$NET_PREFIX.1
HOST1_ADDR=$NET_PREFIX.11
HOST2_ADDR=$NET_PREFIX.12
HOST_MEM_MIB=${IMGXEN_HOST_MEM_MIB:-2560}
DOM0_MEM_MIB=${IMGXEN_DOM0_MEM_MIB:-1024}
# No mergeable rx buffers and no checksum/segmentation offloads: with them,
# the PV dom0 (virtio DMA through swiotlb-xen) accepted corrupted TCP data
# while its bridge forwarded traffic to a guest's vif (ssh failed with
# "incorrect signature"). Without them the dom0 verifies every checksum.
NIC_OPTS=${IMGXEN_NIC_OPTS:-mrg_rxbuf=off,csum=off,guest_csum=off,gso=off,guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,host_tso4=off,host_tso6=off,host_ecn=off,host_ufo=off}
# -smap off: plain `max` crashes dom0 on its first page fault. XSAVE (and so
# AVX) off: with them, dom0 computed wrong results whenever a guest was
# running (ssh between dom0s failed with "incorrect signature" / "closed by
# remote host"; vector state is not kept across Xen's vCPU switches under
# TCG). With FXSAVE only, both migrations pass.
HOST_CPU=${IMGXEN_CPU:-max,-smap,-avx,-avx2,-xsave}
QEMU_PIDS=()
NS_CREATED=

# Removes everything this run created: QEMUs (by PID), the namespace (which
# takes the bridge and taps with it), the run directory unless kept.
hosts_cleanup() {
    local pid
    for pid in "${QEMU_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${QEMU_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    QEMU_PIDS=()
    if [ -n "$NS_CREATED" ]; then
        ip netns del "$NS" 2>/dev/null || true
        NS_CREATED=
    fi
    if [ -z "${IMGXEN_KEEP_RUN_DIR:-}" ] && [ -d "$RUN_DIR" ]; then
        rm -rf "$RUN_DIR"
    fi
}

# Stops both hosts (by PID), keeping the namespace and what else runs in it (to boot the
# hosts again with another hypervisor).
hosts_stop() {
    local pid
    for pid in "${QEMU_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${QEMU_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    QEMU_PIDS=()
}

# ssh into a dom0 from inside the namespace: hssh 1 xl info
hssh() {
    local n=$1
    shift
    local addr
    addr=$(host_addr "$n")
    ip netns exec "$NS" ssh -F "$RUN_DIR/ssh_config" "root@$addr" "$@"
}

host_addr() { if [ "$1" = 1 ]; then echo "$HOST1_ADDR"; else echo "$HOST2_ADDR"; fi; }

# Run directory: per-run ssh key (dom0 authorized key and the dom0s' own
# identity for host-to-host `xl migrate`), env for the dom0 init.
# $1: absolute directory to share into both dom0s at the same path ("" = none).
hosts_prepare() {
    local art=${1:-}
    mkdir -p "$RUN_DIR/share"
    chmod 700 "$RUN_DIR"
    ssh-keygen -q -t ed25519 -N '' -C "imgxen-$$" -f "$RUN_DIR/id_ed25519"
    cp "$RUN_DIR/id_ed25519.pub" "$RUN_DIR/share/authorized_keys"
    cp "$RUN_DIR/id_ed25519" "$RUN_DIR/share/id_ed25519"
    : >"$RUN_DIR/share/env"
    printf '%s xenhost1\n%s xenhost2\n' "$HOST1_ADDR" "$HOST2_ADDR" >"$RUN_DIR/share/hosts"
    # libvirt's ssh transport runs `ssh` with the user's config; its URIs here name this
    # wrapper as their ssh (`?command=`), which adds the run's config.
    printf '#!/bin/sh\nexec ssh -F %s "$@"\n' "$RUN_DIR/ssh_config" >"$RUN_DIR/ssh"
    chmod 755 "$RUN_DIR/ssh"
    if [ -n "$art" ]; then
        printf 'ART_PATH=%s\n' "$art" >"$RUN_DIR/share/env"
    fi
    ART_DIR=$art
    cat >"$RUN_DIR/ssh_config" <<EOF
Host *
  User root
  IdentityFile $RUN_DIR/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 5
  ServerAliveInterval 5
  ServerAliveCountMax 6
EOF
}

hosts_network_up() {
    ip netns add "$NS" || die "ip netns add $NS failed (need root / CAP_NET_ADMIN)"
    NS_CREATED=1
    ip -n "$NS" link set lo up
    ip -n "$NS" link add xbr0 type bridge stp_state 0 forward_delay 0
    ip -n "$NS" addr add "$OUTER_ADDR/$NET_LEN" dev xbr0
    ip -n "$NS" link set xbr0 up
    local n
    for n in 1 2; do
        ip -n "$NS" tuntap add dev "xtap$n" mode tap
        ip -n "$NS" link set "xtap$n" master xbr0
        ip -n "$NS" link set "xtap$n" up
    done
}

# hosts_boot N: starts Xen host N (1 or 2) in the background.
host_boot() {
    local n=$1 addr
    addr=$(host_addr "$n")
    local args=(
        qemu-system-x86_64 -accel tcg -cpu "$HOST_CPU" -smp 1 -m "$HOST_MEM_MIB"
        -nodefaults -no-user-config -display none -no-reboot
        -name "imgxen-host$n" -pidfile "$RUN_DIR/host$n.pid"
        -serial "file:$RUN_DIR/host$n.console"
        -kernel "$XEN_ELF"
        -append "console=com1 com1=115200,8n1 dom0_mem=${DOM0_MEM_MIB}M,max:${DOM0_MEM_MIB}M dom0_max_vcpus=1 loglvl=all guest_loglvl=all noreboot${XEN_EXTRA_ARGS:+ $XEN_EXTRA_ARGS}"
        -initrd "$DOM0_KERNEL console=hvc0 quiet net.ifnames=0 imgxen.name=xenhost$n imgxen.addr=$addr/$NET_LEN,$DOM0_ROOT"
        -netdev "tap,id=n0,ifname=xtap$n,script=no,downscript=no"
        -device "virtio-net-pci,netdev=n0,mac=52:54:00:9e:00:1$n,$NIC_OPTS"
        -virtfs "local,path=$RUN_DIR/share,mount_tag=imgrun,security_model=none,id=run"
    )
    if [ -n "${ART_DIR:-}" ]; then
        args+=(-virtfs "local,path=$ART_DIR,mount_tag=imgart,security_model=none,id=art")
    fi
    # For debugging by hand: a monitor socket and QEMU's log file (enable with `log int`).
    if [ -n "${IMGXEN_QEMU_DEBUG:-}" ]; then
        args+=(-monitor "unix:$RUN_DIR/host$n.monitor,server,nowait" -D "$RUN_DIR/host$n.qemu-debug.log")
    fi
    ip netns exec "$NS" "${args[@]}" >"$RUN_DIR/host$n.qemu.log" 2>&1 &
    QEMU_PIDS+=($!)
    eval "HOST${n}_PID=$!"
}

# host_wait_ready N TIMEOUT: until the dom0 answers `xl info` over ssh.
host_wait_ready() {
    local n=$1 timeout=${2:-180} start pid
    start=$(date +%s)
    pid=$(eval echo "\$HOST${n}_PID")
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail_log "$RUN_DIR/host$n.qemu.log" 20
            tail_log "$RUN_DIR/host$n.console" 60
            die "Xen host $n's QEMU exited during boot"
        fi
        if grep -q "imgxen-dom0: READY" "$RUN_DIR/host$n.console" 2>/dev/null \
            && hssh "$n" xl info >"$RUN_DIR/host$n.xlinfo" 2>/dev/null; then
            return 0
        fi
        if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
            tail_log "$RUN_DIR/host$n.console" 60
            die "Xen host $n not ready (ssh + xl info) within ${timeout}s"
        fi
        sleep 1
    done
}

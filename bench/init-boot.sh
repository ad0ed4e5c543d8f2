#!/usr/bin/env bash
# Benchmark for issue 4: time from kernel start to "eth0 up", read from the
# kernel log timestamps on the serial console (printk.time=1), under the same
# QEMU (TCG), the same kernel, the same devices:
#   init       imgbuild-init, as `imgbuild recipe` builds it: initramfs (stage 1:
#              block modules, wait for /dev/vda, mount, switch root) then the
#              root image (stage 2: mounts, hostname, modules, lo, eth0, route).
#   sh-switch  the same two stages as busybox shell scripts: /init in an
#              initramfs of busybox + the same block modules, switch_root into
#              a copy of rootfs.img holding /sbin/bbinit, which does stage 2.
#   sh-ramfs   one busybox /init script in an initramfs: insmod the same
#              modules (both lists: the virtio PCI transport is in stage 1's),
#              then lo, ip addr/link/route; no root mount, no switch: a lower bound.
# Each script logs its own "==> eth0 up <==" line to /dev/kmsg at the point
# where the init logs its marker (after address, link up and default route).
# Also prints the init's stripped size. No root needed: the NIC sits on a QEMU
# hub with no other port, so no packet leaves QEMU.
#
#   bench/init-boot.sh [RUNS] [GUEST_DIR]
#     RUNS       runs per variant, interleaved (default 10)
#     GUEST_DIR  an out/<name> directory from `imgbuild recipe` (default: build
#                recipes/busybox.toml into a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
runs=${1:-10}
guest=${2:-}
qemu=${QEMU:-qemu-system-x86_64}
for tool in "$qemu" debugfs cpio gzip zcat; do
    command -v "$tool" >/dev/null || { echo "init-boot: needs $tool" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/init-boot.XXXXXX)
qpid=
cleanup() {
    if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
    [ -n "${KEEP:-}" ] && echo "init-boot: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$guest" ]; then
    cargo build --release -q -p imgbuild
    "${CARGO_TARGET_DIR:-$PWD/target}/release/imgbuild" recipe recipes/busybox.toml --out "$work/out" >/dev/null
    guest=$work/out/busybox
fi
for f in vmlinuz initrd.img rootfs.img; do
    [ -f "$guest/$f" ] || { echo "init-boot: $guest/$f missing" >&2; exit 1; }
done

# --- what the builder produced --------------------------------------------
mkdir -p "$work/ours"
(cd "$work/ours" && zcat "$guest/initrd.img" | cpio -id --quiet)
conf1=$work/ours/etc/imgbuild/init.conf
conf2=$work/root.conf
debugfs -R "cat /etc/imgbuild/init.conf" "$guest/rootfs.img" >"$conf2" 2>/dev/null
val() { sed -n "s/^$1 = //p" "$2" | head -n1; }
kver=$(val kernel_version "$conf2")
addr=$(val net.address "$conf2")
gw=$(val net.gateway "$conf2")
host=$(val hostname "$conf2")
mac=$(val net.mac "$conf2")
mods1=$(sed -n 's/^stage1_module = //p' "$conf1" | tr '\n' ' ')
mods2=$(sed -n 's/^stage2_module = //p' "$conf2" | tr '\n' ' ')
init_size=$(stat -c %s "$work/ours/init")
init_file=$(file -b "$work/ours/init" | sed 's/, BuildID\[[^]]*\]=[0-9a-f]*//')
debugfs -R "dump /bin/busybox $work/busybox" "$guest/rootfs.img" >/dev/null 2>&1
chmod 0755 "$work/busybox"

# Modules as the root image holds them (decompressed by the builder).
mkdir -p "$work/mods"
for m in $mods1 $mods2; do
    [ -f "$work/mods/$m" ] && continue
    mkdir -p "$work/mods/$(dirname "$m")"
    debugfs -R "dump /lib/modules/$kver/$m $work/mods/$m" "$guest/rootfs.img" >/dev/null 2>&1 || true
    [ -s "$work/mods/$m" ] || cp "$work/ours/lib/modules/$kver/$m" "$work/mods/$m"
done

newc() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$2"; }
ramfs_skeleton() { # dir
    mkdir -p "$1"/{bin,dev,proc,sys,newroot,lib/modules/$kver}
    cp "$work/busybox" "$1/bin/busybox"
    ln -s busybox "$1/bin/sh"
}

# The network steps, shared by sh-switch (stage 2) and sh-ramfs.
net_steps() {
    cat <<SH
busybox hostname $host
for m in $mods2; do busybox insmod /lib/modules/$kver/\$m 2>/dev/null; done
busybox ip link set lo up
while [ ! -e /sys/class/net/eth0 ]; do busybox usleep 10000; done
busybox ip addr add $addr dev eth0
busybox ip link set eth0 up
busybox ip route add default via $gw dev eth0
echo "bench-sh: ==> eth0 up <==" > /dev/kmsg
SH
}

# --- sh-ramfs ----------------------------------------------------------------
r=$work/sh-ramfs
ramfs_skeleton "$r"
for m in $mods1 $mods2; do mkdir -p "$r/lib/modules/$kver/$(dirname "$m")"; cp "$work/mods/$m" "$r/lib/modules/$kver/$m"; done
{
    echo '#!/bin/sh'
    echo 'busybox mount -t proc proc /proc; busybox mount -t sysfs sysfs /sys; busybox mount -t devtmpfs devtmpfs /dev'
    # The stage-1 list holds the virtio PCI transport the NIC needs too.
    echo "for m in $mods1; do busybox insmod /lib/modules/$kver/\$m 2>/dev/null; done"
    net_steps
    echo 'exec busybox sh'
} >"$r/init"
chmod 0755 "$r/init"
newc "$r" "$work/sh-ramfs.img"

# --- sh-switch -----------------------------------------------------------------
s=$work/sh-switch
ramfs_skeleton "$s"
for m in $mods1; do mkdir -p "$s/lib/modules/$kver/$(dirname "$m")"; cp "$work/mods/$m" "$s/lib/modules/$kver/$m"; done
cat >"$s/init" <<SH
#!/bin/sh
busybox mount -t proc proc /proc; busybox mount -t sysfs sysfs /sys; busybox mount -t devtmpfs devtmpfs /dev
for m in $mods1; do busybox insmod /lib/modules/$kver/\$m 2>/dev/null; done
while [ ! -b /dev/vda ]; do busybox usleep 10000; done
busybox mount -t ext4 -o ro /dev/vda /newroot
busybox mount --move /proc /newroot/proc; busybox mount --move /sys /newroot/sys; busybox mount --move /dev /newroot/dev
exec busybox switch_root /newroot /sbin/bbinit
SH
chmod 0755 "$s/init"
newc "$s" "$work/sh-switch-initrd.img"
{
    echo '#!/bin/sh'
    echo 'busybox mkdir -p /dev/pts /dev/shm'
    echo 'busybox mount -t devpts devpts /dev/pts; busybox mount -t tmpfs shm /dev/shm'
    echo 'busybox mount -t tmpfs run /run; busybox mount -t tmpfs tmpfs /tmp'
    net_steps
    echo 'exec busybox setsid busybox cttyhack busybox sh'
} >"$work/bbinit"
chmod 0755 "$work/bbinit"
cp --sparse=always "$guest/rootfs.img" "$work/sh-switch-rootfs.img"
debugfs -w -R "write $work/bbinit /sbin/bbinit" "$work/sh-switch-rootfs.img" >/dev/null 2>&1
debugfs -R "stat /sbin/bbinit" "$work/sh-switch-rootfs.img" 2>/dev/null | grep -q "Mode:  0755" ||
    { echo "init-boot: could not put /sbin/bbinit into the root image copy" >&2; exit 1; }

# --- one boot ------------------------------------------------------------------
# boot VARIANT LOG -> prints "<eth0 up> <run /init>" (kernel seconds).
# Runs in the main shell (not a subshell) so that the EXIT trap sees $qpid.
boot() {
    local variant=$1 log=$2 initrd root cmdline
    case $variant in
        init) initrd=$guest/initrd.img root=$guest/rootfs.img cmdline="root=/dev/vda ro" ;;
        sh-switch) initrd=$work/sh-switch-initrd.img root=$work/sh-switch-rootfs.img cmdline="root=/dev/vda ro" ;;
        sh-ramfs) initrd=$work/sh-ramfs.img root=$guest/rootfs.img cmdline="" ;;
    esac
    : >"$log"
    "$qemu" -machine q35 -accel tcg -cpu max -m 512M -smp 1 -nodefaults -no-user-config \
        -display none -no-reboot -monitor none \
        -kernel "$guest/vmlinuz" -initrd "$initrd" \
        -append "$cmdline console=ttyS0 panic=-1 printk.time=1" \
        -drive "file=$root,format=raw,if=virtio,readonly=on" \
        -netdev hubport,id=n0,hubid=0 -device "virtio-net-pci,netdev=n0,mac=${mac:-00:16:3e:00:00:01}" \
        -serial "file:$log" 2>"$log.stderr" &
    qpid=$!
    local i
    for i in $(seq 1 1200); do
        grep -aq "==> eth0 up <==" "$log" && break
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
    qpid=
    local up start
    up=$(grep -a "==> eth0 up <==" "$log" | head -n1 | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
    start=$(grep -a "Run /init as init process" "$log" | head -n1 | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
    if [ -z "$up" ]; then
        echo "init-boot: $variant never logged eth0 up; console tail:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    echo "$up ${start:-0}"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) printf "%.3f", a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2}'; }

variants=${VARIANTS:-"init sh-switch sh-ramfs"}
echo "init-boot: $runs runs per variant; $(nproc) cores; $("$qemu" --version | head -n1); kernel $kver" >&2
for i in $(seq 1 "$runs"); do
    for v in $variants; do
        boot "$v" "$work/$v-$i.log" >"$work/result"
        read -r up start <"$work/result"
        echo "$up" >>"$work/$v.up"
        awk -v u="$up" -v s="$start" 'BEGIN {printf "%.6f\n", u - s}' >>"$work/$v.user"
        echo "  run $i $v: eth0 up at ${up}s (user space ${start}s → ${up}s)" >&2
    done
done

echo
echo "| variant | kernel start → eth0 up, median of $runs (s) | min (s) | max (s) | of which user space (/init started → eth0 up), median (s) |"
echo "| --- | --- | --- | --- | --- |"
for v in $variants; do
    printf '| %s | %s | %s | %s | %s |\n' "$v" "$(median <"$work/$v.up")" \
        "$(sort -g "$work/$v.up" | head -n1 | xargs printf '%.3f')" \
        "$(sort -g "$work/$v.up" | tail -n1 | xargs printf '%.3f')" \
        "$(median <"$work/$v.user")"
done
echo
echo "imgbuild-init (/init in initrd.img, the same file as /sbin/init): $init_size bytes ($(awk -v b="$init_size" 'BEGIN {printf "%.2f", b/1048576}') MiB), $init_file"
echo "busybox (reference): $(stat -c %s "$work/busybox") bytes"

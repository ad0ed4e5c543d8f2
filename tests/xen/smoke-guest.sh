#!/usr/bin/env bash
# Makes a tiny PV guest for checking the nested hosts by hand (not the real
# imgbuild artifacts): Debian's kernel + a busybox initramfs that brings up
# eth0 (xen-netfront) at imgsmoke.addr= and prints a heartbeat on hvc0.
# Usage: smoke-guest.sh OUTDIR [ADDR/LEN]   -> OUTDIR/{vmlinuz,initrd.img,smoke.cfg}
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

OUT=$(mkdir -p "$1" && cd "$1" && pwd)
ADDR=${2:-10.99.0.2/24}
eval "$(bash "$XEN_TESTS_DIR/build-dom0.sh")"
KMOD=$(dirname "$DOM0_KERNEL")/modules/$DOM0_KVER

BB=/bin/busybox
if ! file -L "$BB" 2>/dev/null | grep -q 'statically linked'; then
    BBDIR=$CACHE_DIR/busybox-static
    if [ ! -x "$BBDIR/bin/busybox" ]; then
        rm -rf "$BBDIR.tmp" && mkdir -p "$BBDIR.tmp"
        (cd "$BBDIR.tmp" && apt-get download -q busybox-static >/dev/null && dpkg-deb -x ./*.deb x)
        mkdir -p "$BBDIR/bin" && cp "$BBDIR.tmp/x/bin/busybox" "$BBDIR/bin/busybox"
        rm -rf "$BBDIR.tmp"
    fi
    BB=$BBDIR/bin/busybox
fi

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T"/{bin,proc,sys,dev,tmp}
cp "$BB" "$T/bin/busybox"
cp "$KMOD/kernel/drivers/net/xen-netfront.ko" "$T/"
cat >"$T/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec >/dev/hvc0 2>&1 </dev/hvc0
insmod /xen-netfront.ko
addr=; for a in $(cat /proc/cmdline); do case $a in imgsmoke.addr=*) addr=${a#imgsmoke.addr=};; esac; done
ip link set lo up; ip link set eth0 up; [ -n "$addr" ] && ip addr add "$addr" dev eth0
echo "smoke guest up: boot $(cat /proc/sys/kernel/random/boot_id) $(ip -o link show eth0)"
nc -lk -p 5115 -e sh -c 'cat /proc/sys/kernel/random/boot_id' &
i=0; while :; do i=$((i+1)); echo "tick $i $(cut -d' ' -f1 /proc/uptime)"; sleep 2; done
EOF
chmod 755 "$T/init"
(cd "$T" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$OUT/initrd.img"
cp "$DOM0_KERNEL" "$OUT/vmlinuz"
cat >"$OUT/smoke.cfg" <<EOF
name = "smoke"
type = "pv"
kernel = "$OUT/vmlinuz"
ramdisk = "$OUT/initrd.img"
extra = "console=hvc0 quiet imgsmoke.addr=$ADDR"
memory = 128
vcpus = 1
vif = [ "mac=00:16:3e:99:00:02,bridge=xenbr0" ]
on_crash = "preserve"
EOF
log "smoke guest in $OUT"

#!/bin/bash
# Boots the same kernel + same disk twice per round: once with imgbuild-init,
# once with a busybox shell script doing the same steps, and prints the
# kernel timestamp of each "eth0 up" line. Run mk-images.sh first.
set -euo pipefail
C=${C:-$HOME/.cache/imgbuild-init}
K=6.1.0-56-amd64
ROUNDS=${ROUNDS:-3}
M=$C/x/lib/modules/$K
B=$C/bb; rm -rf $B; mkdir -p $B/ir/bin $B/ir/newroot $B/ir/proc $B/ir/sys $B/ir/dev $B/root
cp $C/x/bin/busybox $B/ir/bin/busybox; ln -s busybox $B/ir/bin/sh
MODS1=$(sed -n 's/^stage1_module = //p' $C/ir/etc/imgbuild/init.conf | tr '\n' ' ')
for m in $MODS1; do mkdir -p $B/ir/lib/modules/$K/$(dirname $m); cp $M/$m $B/ir/lib/modules/$K/$m; done
cat > $B/ir/init <<SH
#!/bin/sh
export PATH=/bin
busybox mount -t proc proc /proc; busybox mount -t sysfs sysfs /sys; busybox mount -t devtmpfs devtmpfs /dev
for m in $MODS1; do busybox insmod /lib/modules/$K/\$m; done
while [ ! -b /dev/vda ]; do busybox usleep 20000; done
busybox mount -t ext4 -o ro /dev/vda /newroot
busybox mount --move /proc /newroot/proc; busybox mount --move /sys /newroot/sys; busybox mount --move /dev /newroot/dev
exec busybox switch_root /newroot /sbin/bbinit
SH
chmod +x $B/ir/init
(cd $B/ir && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > $B/initrd.img
# root: the same tree as rootfs.img plus /sbin/bbinit
cp -a $C/root/. $B/root/
cat > $B/root/sbin/bbinit <<SH
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t devpts devpts /dev/pts 2>/dev/null || { mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; }
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
hostname imgtest
for m in kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko kernel/drivers/net/virtio_net.ko; do insmod /lib/modules/$K/\$m; done
ifconfig lo up
while [ ! -e /sys/class/net/eth0 ]; do usleep 20000; done
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
route add default gw 10.0.2.2
echo "bbscript: ==> eth0 up <==" > /dev/kmsg
exec setsid cttyhack sh
SH
chmod +x $B/root/sbin/bbinit
rm -f $B/rootfs.img; mke2fs -q -t ext4 -d $B/root $B/rootfs.img 64M

boot() { # initrd rootfs log
  qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -kernel $C/x/boot/vmlinuz-$K -initrd $1 \
    -append "console=ttyS0 root=/dev/vda ro" -drive file=$2,format=raw,if=virtio,snapshot=on \
    -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0 -monitor none -serial file:$3 -display none &
  local pid=$!
  for _ in $(seq 600); do grep -aq "eth0 up <==" $3 2>/dev/null && break; sleep 0.1; done
  kill $pid; wait $pid 2>/dev/null || true
  local run up
  run=$(grep -a "Run /init as init process" $3 | head -1 | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
  up=$(grep -a "eth0 up <==" $3 | head -1 | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
  echo "${up}s (Run /init at ${run}s, +$(python3 -c "print(round($up-$run,3))")s)"
}
for r in $(seq $ROUNDS); do
  a=$(boot $C/initrd.img $C/rootfs.img $B/init-$r.log)
  b=$(boot $B/initrd.img $B/rootfs.img $B/bb-$r.log)
  echo "round $r: imgbuild-init eth0 up at $a; busybox script at $b"
done

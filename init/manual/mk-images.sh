#!/bin/bash
# Hand-assembles an initramfs and a root ext4 image for a manual boot test.
set -euo pipefail
C=${C:-$HOME/.cache/imgbuild-init}
K=6.1.0-56-amd64
M=$C/x/lib/modules/$K
INIT=${INIT:-target/init-static/x86_64-unknown-linux-gnu/init/imgbuild-init}
STAGE1_MODS="kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci.ko kernel/drivers/block/virtio_blk.ko kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/crypto/crc32c_generic.ko kernel/fs/ext4/ext4.ko"
STAGE2_MODS="kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko kernel/drivers/net/virtio_net.ko"

rm -rf $C/ir $C/root; mkdir -p $C/ir/etc/imgbuild $C/root/etc/imgbuild
# --- initramfs (no busybox, no /dev/console: the minimal case) ---
cp $INIT $C/ir/init
for m in $STAGE1_MODS; do mkdir -p $C/ir/lib/modules/$K/$(dirname $m); cp $M/$m $C/ir/lib/modules/$K/$m; done
{ echo "stage = 1"; echo "kernel_version = $K"; echo "root_wait_secs = ${ROOT_WAIT:-10}";
  for m in ${STAGE1_LIST:-$STAGE1_MODS}; do echo "stage1_module = $m"; done; } > $C/ir/etc/imgbuild/init.conf
cat > $C/ir/lib/modules/$K/modules.dep <<DEP
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
DEP
if [ -n "${IR_BUSYBOX:-}" ]; then  # optional: a rescue shell in the initramfs
  mkdir -p $C/ir/bin; cp $C/x/bin/busybox $C/ir/bin/busybox; ln -s busybox $C/ir/bin/sh
fi
(cd $C/ir && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > $C/initrd.img

# --- root image ---
R=$C/root
mkdir -p $R/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root}
cp $C/x/bin/busybox $R/bin/busybox
for a in $($R/bin/busybox --list-full); do [ -e $R/$a ] || ln -s /bin/busybox $R/$a; done
rm -f $R/sbin/init; cp $INIT $R/sbin/init
for m in $STAGE2_MODS; do mkdir -p $R/lib/modules/$K/$(dirname $m); cp $M/$m $R/lib/modules/$K/$m; done
cat > $R/lib/modules/$K/modules.dep <<DEP
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
DEP
cat > $R/etc/imgbuild/init.conf <<CONF
stage = 2
kernel_version = $K
hostname = imgtest
stage2_module = ${STAGE2_ENTRY:-virtio_net}
stage2_module = kernel/drivers/net/nosuch.ko
net.iface = eth0
net.address = 10.0.2.15/24
net.gateway = 10.0.2.2
net.wait_secs = 5
shell = /bin/sh
service = once /bin/echo "service once ran"
service = respawn /bin/sh -c "sleep 30"
status.enabled = true
status.port = 5115
CONF
echo "root:x:0:0:root:/root:/bin/sh" > $R/etc/passwd
rm -f $C/rootfs.img
mke2fs -q -t ext4 -L imgtest-root -d $R $C/rootfs.img 64M
echo built: $(ls -l $C/initrd.img $C/rootfs.img | awk '{print $5, $9}')

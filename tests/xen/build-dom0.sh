#!/usr/bin/env bash
# Prepares everything a nested Xen host needs, cached between runs:
#   $CACHE_DIR/xen-<ver>/xen.elf          the hypervisor (gunzipped, for QEMU's multiboot loader)
#   $CACHE_DIR/kernel-<kver>/vmlinuz      Debian's generic 6.1 kernel (dom0 support)
#   $CACHE_DIR/dom0-<key>.cpio            dom0 root as one initramfs (debootstrap minbase
#                                          + that version's Xen tools + sshd + open-iscsi, udev,
#                                          nbd-client, libvirtd (libxl) + our dom0-init)
# Usage: build-dom0.sh [pinned|current]
#   pinned   Xen $XEN_VERSION (lib.sh), which must have shadow paging (PV live migration)
#   current  the Xen 4.17 packages apt would install now (Debian 12's security build),
#            whatever their hypervisor was built with
# Prints "XEN_ELF=… DOM0_KERNEL=… DOM0_ROOT=… XEN_VERSION=… XEN_SHADOW=y|n" lines on stdout
# (for `eval`). No loop devices: the root is a cpio archive the dom0 kernel unpacks itself.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

WHICH=${1:-pinned}
case "$WHICH" in
pinned) ;;
current)
    XEN_VERSION=$(apt-cache policy xen-hypervisor-$XEN_SERIES-amd64 2>/dev/null | sed -n 's/^ *Candidate: //p')
    [ -n "$XEN_VERSION" ] && [ "$XEN_VERSION" != "(none)" ] \
        || die "no candidate for xen-hypervisor-$XEN_SERIES-amd64 (apt-get update? is bookworm-security a source?)"
    ;;
*) die "usage: build-dom0.sh [pinned|current]" ;;
esac

need_root
ensure_host_tools
mkdir -p "$CACHE_DIR"
# One build at a time per cache (two runs would debootstrap into the same directory).
exec 9>"$CACHE_DIR/.build-lock"
flock 9
MIRROR=${IMGBUILD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# --- 1. the pinned Xen packages ------------------------------------------------
DEBS=$CACHE_DIR/debs-$XEN_VERSION
mkdir -p "$DEBS"
for pkg in "${XEN_PACKAGES[@]}"; do
    # dpkg file names encode ':' in versions as '%3a'; our version has no epoch.
    f="${pkg}_${XEN_VERSION}_amd64.deb"
    [ -s "$DEBS/$f" ] && continue
    if (cd "$DEBS" && apt-get download -q "$pkg=$XEN_VERSION" >/dev/null 2>&1) && [ -s "$DEBS/$f" ]; then
        log "downloaded $f"
    elif [ -s "$XEN_DEBS_DIR/$f" ]; then
        cp "$XEN_DEBS_DIR/$f" "$DEBS/$f.tmp" && mv "$DEBS/$f.tmp" "$DEBS/$f"
        log "took $f from $XEN_DEBS_DIR"
    else
        die "cannot get $pkg=$XEN_VERSION: not in the Debian archive and not in \$IMGBUILD_XEN_DEBS ($XEN_DEBS_DIR)"
    fi
done

# --- 2. hypervisor + shadow-paging check ----------------------------------------
XENDIR=$CACHE_DIR/xen-$XEN_VERSION
if [ ! -s "$XENDIR/xen.elf" ]; then
    rm -rf "$XENDIR.tmp"
    mkdir -p "$XENDIR.tmp"
    dpkg-deb -x "$DEBS/xen-hypervisor-4.17-amd64_${XEN_VERSION}_amd64.deb" "$XENDIR.tmp/x"
    cp "$XENDIR.tmp"/x/boot/xen-*.config "$XENDIR.tmp/xen.config"
    gunzip -c "$XENDIR.tmp"/x/boot/xen-*-amd64.gz >"$XENDIR.tmp/xen.elf"
    rm -rf "$XENDIR.tmp/x"
    rm -rf "$XENDIR"
    mv "$XENDIR.tmp" "$XENDIR"
fi
XEN_SHADOW=n
grep -qx 'CONFIG_SHADOW_PAGING=y' "$XENDIR/xen.config" && XEN_SHADOW=y
if [ "$WHICH" = pinned ] && [ "$XEN_SHADOW" != y ]; then
    die "hypervisor $XEN_VERSION is built without CONFIG_SHADOW_PAGING=y ($XENDIR/xen.config): PV live migration fails with 'Failed to enable logdirty: 95'"
fi

# --- 3. dom0 kernel --------------------------------------------------------------
KPKG=$(dom0_kernel_package)
[ -n "$KPKG" ] || die "cannot find linux-image-6.1.0-NN-amd64 via 'apt-cache depends linux-image-amd64' (run apt-get update)"
KVER=${KPKG#linux-image-}
KPKG_VERSION=$(apt-cache show "$KPKG" | sed -n 's/^Version: //p' | head -n1)
KDIR=$CACHE_DIR/kernel-$KVER-$KPKG_VERSION
if [ ! -s "$KDIR/vmlinuz" ]; then
    rm -rf "$KDIR.tmp"
    mkdir -p "$KDIR.tmp"
    (cd "$KDIR.tmp" && apt-get download -q "$KPKG=$KPKG_VERSION" >/dev/null) || die "apt-get download $KPKG failed"
    dpkg-deb -x "$KDIR.tmp"/*.deb "$KDIR.tmp/x"
    rm -f "$KDIR.tmp"/*.deb
    cp "$KDIR.tmp/x/boot/vmlinuz-$KVER" "$KDIR.tmp/vmlinuz"
    mkdir -p "$KDIR.tmp/modules"
    mv "$KDIR.tmp/x/lib/modules/$KVER" "$KDIR.tmp/modules/"
    rm -rf "$KDIR.tmp/x"
    rm -rf "$KDIR"
    mv "$KDIR.tmp" "$KDIR"
    log "kernel $KPKG $KPKG_VERSION ready"
fi

# --- 4. dom0 root ----------------------------------------------------------------
# The tools' dependencies, open-iscsi, udev (its by-path links name iSCSI disks the same on
# every host), nbd-client and libvirt's libxl driver with virsh (bookworm's 9.0: the libvirt
# backend's test), so debootstrap fetches everything in one go. The Xen libraries libvirt
# pulls in are replaced by the chosen Xen version's below.
INCLUDE=kmod,iproute2,openssh-server,mount,udev,ucf,python3,libyajl2,libncurses6,libtinfo6,procps,socat,busybox,netbase,libnl-3-200,libnl-route-3-200,zlib1g,liblzma5,libbz2-1.0,libzstd1,libfdt1,libgnutls30,libpixman-1-0,libaio1,libglib2.0-0,open-iscsi,nbd-client,libvirt-daemon-driver-xen,libvirt-clients
# The minbase tree before any Xen package: built once, shared by both versions.
BASEKEY=$(echo "$INCLUDE $MIRROR bookworm" | sha256sum | cut -c1-16)
BASE=$CACHE_DIR/dom0-base-$BASEKEY
if [ ! -d "$BASE" ]; then
    log "debootstrap minbase bookworm (once), key $BASEKEY"
    rm -rf "$BASE.tmp"
    mkdir -p "$BASE.tmp"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$BASE.tmp" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail_log "$CACHE_DIR/debootstrap.log"; rm -rf "$BASE.tmp"; die "debootstrap failed"; }
    mv "$BASE.tmp" "$BASE"
fi
KEY=$(cat "$0" "$XEN_TESTS_DIR/dom0-init" "$XEN_TESTS_DIR/lib.sh" \
    | { cat; echo "$XEN_VERSION $KPKG $KPKG_VERSION $MIRROR $BASEKEY"; } | sha256sum | cut -c1-16)
ROOT_CPIO=$CACHE_DIR/dom0-$KEY.cpio
if [ ! -s "$ROOT_CPIO" ]; then
    log "building dom0 root (debootstrap minbase bookworm + Xen $XEN_VERSION), key $KEY"
    WORK=$CACHE_DIR/dom0-$KEY.work
    rm -rf "$WORK"
    mkdir -p "$WORK"
    T=$WORK/root
    cleanup_build() {
        for m in "$T/proc" "$T/sys" "$T/dev/pts" "$T/dev"; do
            mountpoint -q "$m" 2>/dev/null && umount -l "$m"
        done
        return 0
    }
    trap cleanup_build EXIT
    cp -a "$BASE" "$T"
    mkdir -p "$T/tmp/debs"
    for pkg in "${XEN_PACKAGES[@]}"; do
        [ "$pkg" = xen-hypervisor-4.17-amd64 ] && continue
        cp "$DEBS/${pkg}_${XEN_VERSION}_amd64.deb" "$T/tmp/debs/"
    done
    printf '#!/bin/sh\nexit 101\n' >"$T/usr/sbin/policy-rc.d"
    chmod 755 "$T/usr/sbin/policy-rc.d"
    mount -t proc proc "$T/proc"
    # dpkg resolves nothing: everything the debs need came with debootstrap.
    if ! chroot "$T" sh -c 'DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/debs/*.deb' >"$WORK/dpkg.log" 2>&1; then
        # missing dependencies: let apt fetch them from the mirror
        chroot "$T" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends -f install' >>"$WORK/dpkg.log" 2>&1 \
            || { tail_log "$WORK/dpkg.log"; die "installing the Xen tools into the dom0 root failed"; }
    fi
    chroot "$T" sh -c 'dpkg-query -W -f "\${Package} \${Version}\n" xen-utils-4.17' | grep -q "$XEN_VERSION" \
        || die "xen-utils-4.17 $XEN_VERSION not installed in dom0 root (see $WORK/dpkg.log)"
    umount "$T/proc"
    rm -rf "$T/tmp/debs" "$T/usr/sbin/policy-rc.d"

    # libvirt's libxl driver decodes the host CPU from Xen's hw_caps and starts only if a
    # CPU model of its map has all its features there. Under QEMU's TCG `max` CPU (AMD-like),
    # Xen's host featureset has no sep (nor vme), which every x86 model libvirt 9.0 decodes
    # hosts with requires, so libvirtd refuses to start ("Cannot find suitable CPU model for
    # given data"). The test dom0's map gets one more model: Conroe's features without sep.
    CPU_MAP=$T/usr/share/libvirt/cpu_map
    if [ -f "$CPU_MAP/x86_Conroe.xml" ]; then
        {
            echo "<cpus>"
            echo "  <model name='imgxen-tcg'>"
            echo "    <decode host='on' guest='off'/>"
            grep "<feature name=" "$CPU_MAP/x86_Conroe.xml" | grep -v "'sep'"
            echo "  </model>"
            echo "</cpus>"
        } >"$CPU_MAP/x86_imgxen-tcg.xml"
        sed -i "s|^\( *\)<include filename='x86_Conroe.xml'/>|&\n\1<include filename='x86_imgxen-tcg.xml'/>|" "$CPU_MAP/index.xml"
        grep -q x86_imgxen-tcg.xml "$CPU_MAP/index.xml" || die "could not add the TCG CPU model to libvirt's cpu_map"
    fi

    # libvirt-daemon 9.0 depends on its QEMU driver, which would not start here (no
    # libvirt-qemu user) and take libvirtd down with it; a Xen host needs only libxl's.
    rm -f "$T"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so

    # Kernel modules dom0 needs (no udev rules run, so /init loads them by name).
    KM=$KDIR/modules/$KVER
    TM=$T/lib/modules/$KVER
    mkdir -p "$TM"
    cp "$KM"/modules.order "$KM"/modules.builtin "$KM"/modules.builtin.modinfo "$TM/" 2>/dev/null || true
    for d in kernel/drivers/virtio kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko \
        kernel/net/core/failover.ko kernel/drivers/block/virtio_blk.ko kernel/drivers/block/nbd.ko \
        kernel/drivers/block/loop.ko kernel/drivers/block/xen-blkback kernel/drivers/net/xen-netback \
        kernel/drivers/xen kernel/net/bridge kernel/net/802 kernel/net/llc kernel/net/9p kernel/fs/9p \
        kernel/fs/netfs kernel/fs/fscache kernel/drivers/net/tun.ko kernel/net/ipv6; do
        [ -e "$KM/$d" ] || continue
        mkdir -p "$(dirname "$TM/$d")"
        cp -a "$KM/$d" "$(dirname "$TM/$d")/"
    done
    # iSCSI initiator and SCSI disks, with whatever they depend on.
    mkdir -p "$WORK/kmods/lib/modules"
    cp -al "$KM" "$WORK/kmods/lib/modules/$KVER" # hard links: same filesystem, no copy
    depmod -b "$WORK/kmods" "$KVER"
    # (crc32c: libiscsi asks the crypto API for it when a connection is made)
    for m in iscsi_tcp sd_mod crc32c_generic; do
        modprobe -d "$WORK/kmods" -S "$KVER" --show-depends "$m" | sed -n 's/^insmod //p' | while read -r f _; do
            rel=${f#"$WORK/kmods/lib/modules/$KVER/"}
            mkdir -p "$(dirname "$TM/$rel")"
            cp -a "$KM/$rel" "$TM/$rel"
        done
    done
    rm -rf "$WORK/kmods"
    chroot "$T" depmod "$KVER"

    # Slim it: docs, man pages, locales, apt lists, python test suites.
    rm -rf "$T"/usr/share/doc/* "$T"/usr/share/man/* "$T"/usr/share/info/* "$T"/usr/share/locale/* \
        "$T"/var/lib/apt/lists/* "$T"/var/cache/apt/*.bin "$T"/var/cache/apt/archives/*.deb \
        "$T"/usr/lib/python3*/test "$T"/usr/lib/python3*/*/test "$T"/usr/share/zoneinfo/right \
        "$T"/lib/udev/hwdb.bin "$T"/etc/udev/hwdb.bin "$T"/etc/ssh/ssh_host_*
    install -m 0755 "$XEN_TESTS_DIR/dom0-init" "$T/init"
    mkdir -p "$T/var/log/xen/console" "$T/var/lib/xen" "$T/var/run/xen" "$T/root/.ssh" "$T/mnt/run"
    chmod 700 "$T/root/.ssh"
    echo "$KVER" >"$T/etc/imgxen-kernel"
    du -sh "$T" >&2
    (cd "$T" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$ROOT_CPIO.tmp"
    mv "$ROOT_CPIO.tmp" "$ROOT_CPIO"
    trap - EXIT
    rm -rf "$WORK"
    log "dom0 root ready: $ROOT_CPIO ($(du -h "$ROOT_CPIO" | cut -f1))"
fi

echo "XEN_ELF=$XENDIR/xen.elf"
echo "DOM0_KERNEL=$KDIR/vmlinuz"
echo "DOM0_ROOT=$ROOT_CPIO"
echo "DOM0_KVER=$KVER"
echo "XEN_VERSION=$XEN_VERSION"
echo "XEN_SHADOW=$XEN_SHADOW"

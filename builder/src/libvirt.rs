//! The libvirt domain XML of a recipe's guest: one for libvirt's libxl
//! driver, made from the same [`XlConfig`] as the xl.cfg (one source for
//! kernel, ramdisk, cmdline, disk, MAC and bridge), and one for its QEMU
//! driver. The format is the contract's (`guest_contract::libvirt_xml`).

use guest_contract::cmdline::Platform;
use guest_contract::libvirt_xml::{DiskSource, DomainXml, Hypervisor};
use guest_contract::storage::Storage;
use guest_contract::xl_cfg::XlConfig;

use crate::recipe::Recipe;
use crate::xlcfg::{self, XlPaths};

/// The bridge of the QEMU domain's NIC: `virbr0`, the bridge of libvirt's
/// `default` network.
pub const QEMU_BRIDGE: &str = "virbr0";

/// The Xen (libxl) domain: the xl.cfg's values, its first disk as a file
/// or, for shared storage, the block device the runner attaches each host
/// to ([`Storage::xl_target`]).
pub fn xen(recipe: &Recipe, paths: &XlPaths) -> DomainXml {
    let XlConfig {
        guest_type,
        name,
        kernel,
        ramdisk,
        cmdline,
        memory_mib,
        vcpus,
        vif,
        on_poweroff,
        on_reboot,
        on_crash,
        ..
    } = xlcfg::config(recipe, paths);
    let target = paths.storage.xl_target();
    DomainXml {
        hypervisor: Hypervisor::Xen(guest_type),
        name,
        memory_mib,
        vcpus,
        kernel,
        initrd: ramdisk,
        cmdline,
        disk: match paths.storage {
            Storage::File { .. } => DiskSource::File(target),
            Storage::Phy { .. } | Storage::Iscsi { .. } | Storage::Nbd { .. } => {
                DiskSource::Block(target)
            }
        },
        mac: vif.mac,
        bridge: vif.bridge,
        on_poweroff,
        on_reboot,
        on_crash,
    }
}

/// The QEMU/KVM domain: the same kernel and initramfs with the QEMU
/// command line, `image` (the built root image's absolute path) as a
/// virtio disk, the NIC on [`QEMU_BRIDGE`].
pub fn qemu(recipe: &Recipe, paths: &XlPaths, image: &str) -> DomainXml {
    DomainXml {
        hypervisor: Hypervisor::Kvm,
        cmdline: recipe.kernel_cmdline(Platform::Qemu),
        disk: DiskSource::File(image.to_string()),
        bridge: QEMU_BRIDGE.to_string(),
        ..xen(recipe, paths)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn recipe(text: &str) -> Recipe {
        Recipe::parse(Path::new("/r/busybox.toml"), text).unwrap()
    }

    fn paths(storage: Storage) -> XlPaths {
        XlPaths {
            kernel: "/srv/out/busybox/vmlinuz".into(),
            ramdisk: "/srv/out/busybox/initrd.img".into(),
            storage,
        }
    }

    const BUSYBOX: &str = r#"
[guest]
name = "busybox"
memory = "512M"
vcpus = 2
[network]
address = "10.99.0.2/24"
gateway = "10.99.0.1"
mac = "00:16:3e:5a:01:02"
[xen]
on_crash = "soft-reset"
"#;

    #[test]
    fn the_xen_domain_is_the_xl_cfgs() {
        let r = recipe(BUSYBOX);
        let p = paths(Storage::File {
            path: "/srv/out/busybox/rootfs.img".into(),
        });
        let cfg = xlcfg::config(&r, &p);
        let d = xen(&r, &p);
        assert_eq!(d.hypervisor, Hypervisor::Xen(cfg.guest_type));
        assert_eq!(
            (&d.kernel, &d.initrd, &d.cmdline),
            (&cfg.kernel, &cfg.ramdisk, &cfg.cmdline)
        );
        assert_eq!((d.memory_mib, d.vcpus), (512, 2));
        assert_eq!(d.mac, cfg.vif.mac);
        assert_eq!(d.bridge, "xenbr0");
        assert_eq!(
            d.disk,
            DiskSource::File("/srv/out/busybox/rootfs.img".into())
        );
        let t = d.render();
        assert!(t.contains("<on_crash>restart</on_crash>"), "{t}");
        assert!(t.contains("<mac address='00:16:3e:5a:01:02'/>"), "{t}");
    }

    #[test]
    fn shared_storage_is_a_block_device() {
        let r = recipe(
            "[guest]\nname = \"busybox\"\n[xen.storage]\nkind = \"nbd\"\nserver = \"10.99.0.1\"\nexport = \"busybox\"\n",
        );
        let p = paths(r.xen.storage_in(Path::new("/srv/out/busybox/rootfs.img")));
        let d = xen(&r, &p);
        assert_eq!(
            d.disk,
            DiskSource::Block("/run/imgrun/nbd/10.99.0.1_10809_busybox".into())
        );
        // The QEMU domain boots the built image itself.
        let q = qemu(&r, &p, "/srv/out/busybox/rootfs.img");
        assert_eq!(
            q.disk,
            DiskSource::File("/srv/out/busybox/rootfs.img".into())
        );
    }

    #[test]
    fn the_qemu_domain() {
        let r = recipe(BUSYBOX);
        let p = paths(Storage::File {
            path: "/nfs/busybox.img".into(),
        });
        let q = qemu(&r, &p, "/srv/out/busybox/rootfs.img");
        assert_eq!(q.hypervisor, Hypervisor::Kvm);
        assert_eq!(q.cmdline, r.kernel_cmdline(Platform::Qemu));
        assert_ne!(q.cmdline, r.kernel_cmdline(Platform::Xen));
        assert_eq!(q.bridge, QEMU_BRIDGE);
        assert_eq!(q.kernel, "/srv/out/busybox/vmlinuz");
        assert!(
            q.render()
                .contains("<source file='/srv/out/busybox/rootfs.img'/>")
        );
    }
}

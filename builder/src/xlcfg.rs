//! The Xen domain configuration of a recipe's guest, PV or PVH
//! (`[xen] type`); the xl.cfg(5) format itself is the contract's
//! (`guest_contract::xl_cfg`).

use std::path::Path;

use guest_contract::cmdline::Platform;
use guest_contract::storage::Storage;
use guest_contract::xl_cfg::{Disk, Vif, XlConfig};

use crate::recipe::Recipe;

/// Where the domain's files are, as the Xen host sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlPaths {
    /// The kernel (`kernel =`).
    pub kernel: String,
    /// The initramfs (`ramdisk =`).
    pub ramdisk: String,
    /// The root disk; `target=` of the xvda disk is its
    /// [`Storage::xl_target`].
    pub storage: Storage,
}

/// The xl.cfg(5) text for `recipe`'s guest.
pub fn render(recipe: &Recipe, paths: &XlPaths) -> String {
    config(recipe, paths).render()
}

/// The domain configuration of `recipe`'s guest.
pub fn config(recipe: &Recipe, paths: &XlPaths) -> XlConfig {
    let g = &recipe.guest;
    let x = &recipe.xen;
    XlConfig {
        guest_type: x.guest_type,
        name: g.name.clone(),
        kernel: paths.kernel.clone(),
        ramdisk: paths.ramdisk.clone(),
        cmdline: recipe.kernel_cmdline(Platform::Xen),
        memory_mib: g.memory_mib,
        vcpus: g.vcpus,
        disks: vec![Disk {
            vdev: "xvda".into(),
            target: paths.storage.xl_target(),
        }],
        vif: Vif {
            mac: recipe.network.as_ref().map(|n| n.mac),
            bridge: x.bridge.clone(),
        },
        on_poweroff: x.on_poweroff.clone(),
        on_reboot: x.on_reboot.clone(),
        on_crash: x.on_crash.clone(),
    }
}

/// How to start the built guest, for the build summary: `xl create` of
/// `cfg`, after, for a disk on shared storage, writing the image there and
/// attaching each Xen host (the runner's `imgrun storage` commands, given
/// `out_dir`).
pub fn start_hint(storage: &Storage, out_dir: &Path, cfg: &Path) -> String {
    let out = out_dir.display();
    let mut s = String::new();
    match storage {
        Storage::File { .. } => {}
        Storage::Phy { device } => {
            s.push_str(&format!(
                "root disk: {storage}\n  write {} onto {device} first: it is the disk every Xen host sees\n",
                out_dir.join(guest_contract::outputs::Output::RootImage.file_name("")).display()
            ));
        }
        Storage::Iscsi { .. } | Storage::Nbd { .. } => {
            s.push_str(&format!(
                "root disk: {storage}\n  write the image to it first: imgrun storage push {out}\n  and attach each Xen host: imgrun storage attach {out} HOST\n"
            ));
        }
    }
    s.push_str(&format!(
        "start it on a Xen host with: xl create {}\n",
        cfg.display()
    ));
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn recipe(text: &str) -> Recipe {
        Recipe::parse(Path::new("/r/busybox.toml"), text).unwrap()
    }

    fn paths() -> XlPaths {
        XlPaths {
            kernel: "/srv/out/busybox/vmlinuz".into(),
            ramdisk: "/srv/out/busybox/initrd.img".into(),
            storage: Storage::File {
                path: "/srv/out/busybox/rootfs.img".into(),
            },
        }
    }

    #[test]
    fn snapshot_busybox() {
        let r = recipe(
            r#"
[guest]
name = "busybox"
memory = "512M"
vcpus = 1
[network]
address = "10.99.0.2/24"
gateway = "10.99.0.1"
mac = "00:16:3e:5a:01:02"
"#,
        );
        let want = r#"# Xen PV guest "busybox", written by imgbuild. Start it with: xl create busybox.cfg
type = "pv"
name = "busybox"
kernel = "/srv/out/busybox/vmlinuz"
ramdisk = "/srv/out/busybox/initrd.img"
cmdline = "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off"
memory = 512
vcpus = 1
disk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/out/busybox/rootfs.img' ]
vif = [ 'mac=00:16:3e:5a:01:02, bridge=xenbr0' ]
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "destroy"
"#;
        assert_eq!(render(&r, &paths()), want);
    }

    #[test]
    fn actions_bridge_and_no_network() {
        let r = recipe(
            r#"
[guest]
name = "g2"
memory = "1G"
vcpus = 2
hostname = "h"
[xen]
bridge = "br1"
on_crash = "preserve"
"#,
        );
        let t = render(&r, &paths());
        assert!(t.contains("memory = 1024\n"));
        assert!(t.contains("vcpus = 2\n"));
        assert!(t.contains("cmdline = \"root=/dev/xvda ro console=hvc0\"\n"));
        assert!(t.contains("vif = [ 'bridge=br1' ]\n"));
        assert!(t.contains("on_crash = \"preserve\"\n"));
    }

    #[test]
    fn a_pvh_guest() {
        let pv = recipe("[guest]\nname = \"busybox\"\n");
        let pvh = recipe("[guest]\nname = \"busybox\"\n[xen]\ntype = \"pvh\"\n");
        let t = render(&pvh, &paths());
        assert!(t.starts_with("# Xen PVH guest \"busybox\""), "{t}");
        // The PV config's lines, with the other type.
        assert_eq!(
            t,
            render(&pv, &paths())
                .replace("# Xen PV guest", "# Xen PVH guest")
                .replace("type = \"pv\"\n", "type = \"pvh\"\n")
        );
        let f = guest_contract::xl_cfg::XlFiles::parse(&t).unwrap();
        assert_eq!(f.guest_type, guest_contract::GuestType::Pvh);
    }

    #[test]
    fn the_disk_line_per_storage_kind() {
        for (xen, target) in [
            ("", "/srv/out/busybox/rootfs.img"),
            (
                "[xen]\ndisk_target = \"/nfs/busybox.img\"\n",
                "/nfs/busybox.img",
            ),
            (
                "[xen.storage]\nkind = \"phy\"\ndevice = \"/dev/vg0/busybox\"\n",
                "/dev/vg0/busybox",
            ),
            (
                "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.imgbuild:busybox\"\nportal = \"10.99.0.1\"\nlun = 1\n",
                "/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-lun-1",
            ),
            (
                "[xen.storage]\nkind = \"nbd\"\nserver = \"10.99.0.1\"\nexport = \"busybox\"\n",
                "/run/imgrun/nbd/10.99.0.1_10809_busybox",
            ),
        ] {
            let r = recipe(&format!("[guest]\nname = \"busybox\"\n{xen}"));
            let mut p = paths();
            p.storage = r.xen.storage_in(Path::new("/srv/out/busybox/rootfs.img"));
            let t = render(&r, &p);
            let line = format!("disk = [ 'format=raw, vdev=xvda, access=rw, target={target}' ]\n");
            assert!(t.contains(&line), "{xen}: {t}");
            let f = guest_contract::xl_cfg::XlFiles::parse(&t).unwrap();
            assert_eq!(f.disks, [target], "{xen}");
        }
    }

    #[test]
    fn start_hints() {
        let out = Path::new("/o/busybox");
        let cfg = Path::new("/o/busybox/busybox.cfg");
        let file = Storage::File {
            path: "/o/busybox/rootfs.img".into(),
        };
        assert_eq!(
            start_hint(&file, out, cfg),
            "start it on a Xen host with: xl create /o/busybox/busybox.cfg\n"
        );
        let iscsi = Storage::Iscsi {
            target: "iqn.2026-12.org.imgbuild:busybox".parse().unwrap(),
            portal: "10.99.0.1:3260".parse().unwrap(),
            lun: 1,
        };
        assert_eq!(
            start_hint(&iscsi, out, cfg),
            "root disk: iscsi iqn.2026-12.org.imgbuild:busybox at 10.99.0.1:3260, LUN 1
  write the image to it first: imgrun storage push /o/busybox
  and attach each Xen host: imgrun storage attach /o/busybox HOST
start it on a Xen host with: xl create /o/busybox/busybox.cfg
"
        );
        let phy = Storage::Phy {
            device: "/dev/vg0/b".into(),
        };
        let h = start_hint(&phy, out, cfg);
        assert!(
            h.contains("write /o/busybox/rootfs.img onto /dev/vg0/b first"),
            "{h}"
        );
    }
}

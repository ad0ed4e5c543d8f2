//! The Xen PV domain configuration of a recipe's guest; the xl.cfg(5)
//! format itself is the contract's (`guest_contract::xl_cfg`).

use guest_contract::cmdline::Platform;
use guest_contract::xl_cfg::{Disk, Vif, XlConfig};

use crate::recipe::Recipe;

/// Where the domain's files are, as the Xen host sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlPaths {
    /// The kernel (`kernel =`).
    pub kernel: String,
    /// The initramfs (`ramdisk =`).
    pub ramdisk: String,
    /// The root disk (`target=` of the xvda disk).
    pub disk: String,
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
        name: g.name.clone(),
        kernel: paths.kernel.clone(),
        ramdisk: paths.ramdisk.clone(),
        cmdline: recipe.kernel_cmdline(Platform::Xen),
        memory_mib: g.memory_mib,
        vcpus: g.vcpus,
        disks: vec![Disk {
            vdev: "xvda".into(),
            target: paths.disk.clone(),
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
            disk: "/srv/out/busybox/rootfs.img".into(),
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
}

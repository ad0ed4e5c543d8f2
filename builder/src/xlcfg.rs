//! The Xen PV domain configuration, in xl.cfg(5) form.

use std::fmt::Write as _;

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

/// Quotes a string for xl.cfg: double quotes, with `\` and `"` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Renders the xl.cfg(5) text for `recipe`'s guest.
pub fn render(recipe: &Recipe, paths: &XlPaths) -> String {
    let g = &recipe.guest;
    let x = &recipe.xen;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Xen PV guest {}, written by imgbuild. Start it with: xl create {}.cfg",
        quote(&g.name),
        g.name
    );
    let _ = writeln!(s, "type = \"pv\"");
    let _ = writeln!(s, "name = {}", quote(&g.name));
    let _ = writeln!(s, "kernel = {}", quote(&paths.kernel));
    let _ = writeln!(s, "ramdisk = {}", quote(&paths.ramdisk));
    let _ = writeln!(s, "cmdline = {}", quote(&recipe.xen_cmdline()));
    let _ = writeln!(s, "memory = {}", g.memory_mib);
    let _ = writeln!(s, "vcpus = {}", g.vcpus);
    // `target=` must come last: everything after it is the path.
    let _ = writeln!(
        s,
        "disk = [ 'format=raw, vdev=xvda, access=rw, target={}' ]",
        paths.disk
    );
    match &recipe.network {
        Some(n) => {
            let _ = writeln!(s, "vif = [ 'mac={}, bridge={}' ]", n.mac, x.bridge);
        }
        None => {
            let _ = writeln!(s, "vif = [ 'bridge={}' ]", x.bridge);
        }
    }
    let _ = writeln!(s, "on_poweroff = {}", quote(&x.on_poweroff));
    let _ = writeln!(s, "on_reboot = {}", quote(&x.on_reboot));
    let _ = writeln!(s, "on_crash = {}", quote(&x.on_crash));
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

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}

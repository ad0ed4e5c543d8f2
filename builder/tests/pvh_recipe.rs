//! The shipped `recipes/busybox-pvh.toml` built for real: its xl.cfg is a
//! PVH domain's (and the runner's parse of it says so), booted like the PV
//! guest (same kernel, ramdisk, command line, disk, vif), and the manifest
//! records the type. One quick build with the packages the busybox test
//! caches.

mod common;

use std::path::PathBuf;

use common::{imgbuild, ok, recipe_path};
use guest_contract::GuestType;
use guest_contract::manifest::Manifest;
use guest_contract::xl_cfg::XlFiles;

fn shipped() -> PathBuf {
    recipe_path().with_file_name("busybox-pvh.toml")
}

#[test]
fn the_pvh_recipe_builds_a_pvh_xl_cfg_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    ok(imgbuild(&[
        "recipe",
        "--out",
        out.to_str().unwrap(),
        shipped().to_str().unwrap(),
    ]));
    let dir = std::path::absolute(out.join("busybox-pvh")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("busybox-pvh.cfg")).unwrap();
    assert!(
        cfg.starts_with("# Xen PVH guest \"busybox-pvh\", written by imgbuild."),
        "{cfg}"
    );
    assert!(cfg.contains("\ntype = \"pvh\"\n"), "{cfg}");
    // Direct kernel boot, as for PV: the output's kernel and initramfs, the
    // same console.
    for line in [
        format!("kernel = \"{}\"", dir.join("vmlinuz").display()),
        format!("ramdisk = \"{}\"", dir.join("initrd.img").display()),
        "cmdline = \"root=/dev/xvda ro console=hvc0 ip=10.99.0.5::10.99.0.1:255.255.255.0:busybox-pvh:eth0:off\"".to_owned(),
        "disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-pvh-lun-1' ]".to_owned(),
        "on_crash = \"destroy\"".to_owned(),
    ] {
        assert!(cfg.contains(&format!("\n{line}\n")), "{line}: {cfg}");
    }
    assert!(cfg.contains("\nvif = [ 'mac=00:16:3e:"), "{cfg}");
    let f = XlFiles::parse(&cfg).unwrap();
    assert_eq!(f.guest_type, GuestType::Pvh);

    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["guest"]["xen_type"], "pvh");
    assert_eq!(
        json["storage"]["target"],
        "iqn.2026-12.org.imgbuild:busybox-pvh"
    );
    let m = Manifest::from_json(&text).unwrap();
    assert_eq!(m.guest.guest_type(), GuestType::Pvh);
    assert_eq!(
        m.cmdline.xen,
        "root=/dev/xvda ro console=hvc0 ip=10.99.0.5::10.99.0.1:255.255.255.0:busybox-pvh:eth0:off"
    );
}

#[test]
fn the_pvh_recipe_checks_ok() {
    let o = imgbuild(&["recipe", "--check", shipped().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

//! The libvirt domain XML of every shipped recipe (file, iSCSI, NBD, PVH),
//! built for real and checked against libvirt's own schema with
//! `virt-xml-validate FILE domain` (Debian `libvirt-clients`, with
//! `xmllint` from `libxml2-utils`; `scripts/setup` installs both). Also: both files are in the manifest, and the
//! Xen domain's disk is the xl.cfg's.

mod common;

use std::path::Path;
use std::process::Command;

use common::{imgbuild, ok, recipe_path};
use guest_contract::xl_cfg::XlFiles;

/// `virt-xml-validate FILE domain`; panics with its output if the file is
/// not a valid domain, or with a setup hint if the tool is missing.
fn validate(file: &Path) {
    let o = Command::new("virt-xml-validate")
        .arg(file)
        .arg("domain")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run virt-xml-validate ({e}): install Debian's libvirt-clients and libxml2-utils (scripts/setup does)"
            )
        });
    assert!(
        o.status.success(),
        "{} is not a valid libvirt domain:\n{}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

#[test]
fn every_shipped_recipes_domain_xml_is_valid_libvirt() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (recipe, name, block, xen_type) in [
        ("busybox.toml", "busybox", false, "xenpv'>linux<"),
        ("busybox-iscsi.toml", "busybox-iscsi", true, "xenpv'>linux<"),
        ("busybox-nbd.toml", "busybox-nbd", true, "xenpv'>linux<"),
        ("busybox-pvh.toml", "busybox-pvh", true, "xenpvh'>xenpvh<"),
    ] {
        let file = recipe_path().with_file_name(recipe);
        ok(imgbuild(&[
            "recipe",
            "--out",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ]));
        let dir = out.join(name);
        let xen = dir.join(format!("{name}.xen.xml"));
        let qemu = dir.join(format!("{name}.qemu.xml"));
        validate(&xen);
        validate(&qemu);
        // The documented TCG variant is a valid domain too.
        let tcg = dir.join(format!("{name}.tcg.xml"));
        let text = std::fs::read_to_string(&qemu).unwrap();
        std::fs::write(&tcg, text.replace("type='kvm'", "type='qemu'")).unwrap();
        validate(&tcg);
        assert!(
            std::fs::read_to_string(&tcg)
                .unwrap()
                .contains("<domain type='qemu'>")
        );

        let x = std::fs::read_to_string(&xen).unwrap();
        let cfg =
            XlFiles::parse(&std::fs::read_to_string(dir.join(format!("{name}.cfg"))).unwrap())
                .unwrap();
        assert!(x.contains(xen_type), "{recipe}: {x}");
        assert!(
            x.contains(&format!("<kernel>{}</kernel>", cfg.kernel)),
            "{recipe}: {x}"
        );
        let disk = if block {
            format!("<source dev='{}'/>", cfg.disks[0])
        } else {
            format!("<source file='{}'/>", cfg.disks[0])
        };
        assert!(x.contains(&disk), "{recipe}: {x}");

        // The QEMU domain boots the built image, whatever the Xen storage.
        let q = std::fs::read_to_string(&qemu).unwrap();
        let image = std::path::absolute(dir.join("rootfs.img")).unwrap();
        assert!(
            q.contains(&format!("<source file='{}'/>", image.display())),
            "{recipe}: {q}"
        );

        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let roles: Vec<(&str, &str)> = m["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["role"].as_str().unwrap(), o["file"].as_str().unwrap()))
            .collect();
        let (xf, qf) = (format!("{name}.xen.xml"), format!("{name}.qemu.xml"));
        assert!(roles.contains(&("libvirt-xen", xf.as_str())), "{roles:?}");
        assert!(roles.contains(&("libvirt-qemu", qf.as_str())), "{roles:?}");
    }
}

//! Each storage kind built for real: the shipped `recipes/busybox-iscsi.toml`
//! and `recipes/busybox-nbd.toml`, and phy and file variants of
//! `recipes/busybox.toml`. Checked: the xl.cfg's disk line (and that the
//! runner's parse of it finds the target), the manifest's `storage`, and
//! the build summary's next steps. The image is built the same for every
//! kind (the runner copies it onto shared storage), so this is one quick
//! build per kind with the packages the busybox test caches.

mod common;

use std::path::{Path, PathBuf};

use common::{imgbuild, ok, recipe_path};
use guest_contract::manifest::Manifest;
use guest_contract::storage::Storage;
use guest_contract::xl_cfg::XlFiles;

fn shipped(name: &str) -> PathBuf {
    recipe_path().with_file_name(name)
}

/// `recipes/busybox.toml` as guest `name` with `storage` appended.
fn variant(dir: &Path, name: &str, storage: &str) -> PathBuf {
    let text = std::fs::read_to_string(recipe_path())
        .unwrap()
        .replace("name = \"busybox\"", &format!("name = \"{name}\""));
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, format!("{text}\n{storage}")).unwrap();
    file
}

/// Builds `recipe` into `out`; the build summary.
fn build(out: &Path, recipe: &Path) -> String {
    ok(imgbuild(&[
        "recipe",
        "--out",
        out.to_str().unwrap(),
        recipe.to_str().unwrap(),
    ]))
}

#[test]
fn every_storage_kind_builds_its_xl_cfg_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_abs = std::path::absolute(&out).unwrap();
    let cases = [
        (
            shipped("busybox-iscsi.toml"),
            "busybox-iscsi",
            "/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-lun-1"
                .to_owned(),
            r#"{"kind":"iscsi","target":"iqn.2026-12.org.imgbuild:busybox","portal":"10.99.0.1:3260","lun":1}"#
                .to_owned(),
        ),
        (
            shipped("busybox-nbd.toml"),
            "busybox-nbd",
            "/run/imgrun/nbd/10.99.0.1_10809_busybox".to_owned(),
            r#"{"kind":"nbd","server":"10.99.0.1:10809","export":"busybox"}"#.to_owned(),
        ),
        (
            variant(
                tmp.path(),
                "busybox-phy",
                "[xen.storage]\nkind = \"phy\"\ndevice = \"/dev/vg0/busybox\"\n",
            ),
            "busybox-phy",
            "/dev/vg0/busybox".to_owned(),
            r#"{"kind":"phy","device":"/dev/vg0/busybox"}"#.to_owned(),
        ),
        (
            variant(tmp.path(), "busybox-file", "[xen.storage]\nkind = \"file\"\n"),
            "busybox-file",
            out_abs.join("busybox-file/rootfs.img").display().to_string(),
            format!(
                r#"{{"kind":"file","path":"{}"}}"#,
                out_abs.join("busybox-file/rootfs.img").display()
            ),
        ),
    ];
    for (recipe, name, target, storage_json) in &cases {
        let summary = build(&out, recipe);
        let dir = out.join(name);
        let cfg = std::fs::read_to_string(dir.join(format!("{name}.cfg"))).unwrap();
        let line = format!("disk = [ 'format=raw, vdev=xvda, access=rw, target={target}' ]\n");
        assert!(cfg.contains(&line), "{name}: {cfg}");
        assert_eq!(XlFiles::parse(&cfg).unwrap().disks, [target.as_str()]);

        let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let want: serde_json::Value = serde_json::from_str(storage_json).unwrap();
        assert_eq!(json["storage"], want, "{name}");
        // Without `[xen] type`, a PV guest, and the manifest says so.
        assert_eq!(json["guest"]["xen_type"], "pv", "{name}");
        assert!(cfg.contains("\ntype = \"pv\"\n"), "{name}: {cfg}");
        let m = Manifest::from_json(&text).unwrap();
        let storage = m.root_storage("/unused");
        assert_eq!(&storage.xl_target(), target, "{name}");
        // The image is written for every kind.
        assert!(dir.join("rootfs.img").is_file(), "{name}");

        let push = format!("imgrun storage push {}", dir.display());
        let attach = format!("imgrun storage attach {} HOST", dir.display());
        let shared = matches!(storage, Storage::Iscsi { .. } | Storage::Nbd { .. });
        assert_eq!(summary.contains(&push), shared, "{name}: {summary}");
        assert_eq!(summary.contains(&attach), shared, "{name}: {summary}");
        assert!(
            summary.ends_with(&format!(
                "start it on a Xen host with: xl create {}\n",
                dir.join(format!("{name}.cfg")).display()
            )),
            "{name}: {summary}"
        );
    }
}

#[test]
fn shipped_storage_recipes_check_ok() {
    for r in ["busybox-iscsi.toml", "busybox-nbd.toml"] {
        let o = imgbuild(&["recipe", "--check", shipped(r).to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

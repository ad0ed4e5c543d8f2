//! `imgrun`'s refusals, which need no QEMU guest: too old a QEMU, a missing
//! capability, a broken manifest.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A manifest as the builder writes it (shared with the unit tests of `guest.rs`).
const MANIFEST: &str = include_str!("data/manifest.json");

/// A scratch directory with a manifest, dummy boot files and a fake QEMU
/// printing `version`.
fn scratch(tag: &str, version: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imgrun-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), MANIFEST).unwrap();
    for f in ["vmlinuz", "initrd.img", "rootfs.img"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let qemu = dir.join("fake-qemu");
    std::fs::write(
        &qemu,
        format!("#!/bin/sh\necho 'QEMU emulator version {version}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("logs")).unwrap();
    std::fs::set_permissions(dir.join("logs"), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn run(prefix: &[&str], dir: &Path, extra: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_imgrun");
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("migrate-check")
        .arg(dir)
        .arg("--qemu")
        .arg(dir.join("fake-qemu"))
        .args(["--accel", "tcg", "--log-dir"])
        .arg(dir.join("logs"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn refuses_qemu_7_2_with_the_reason() {
    let dir = scratch("old", "7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)");
    let out = run(&[], &dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("QEMU 7.2.15 is too old"), "{err}");
    assert!(err.contains("crashed the destination guest"), "{err}");
    assert!(err.contains("bookworm-backports"), "{err}");
    // With --json, stdout still carries a verdict for CI.
    let out = run(&[], &dir, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert!(v["error"].as_str().unwrap().contains("too old"), "{v}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn says_when_cap_net_admin_is_missing() {
    let setpriv = Path::new("/usr/bin/setpriv");
    if !rustix::process::geteuid().is_root() || !setpriv.exists() {
        eprintln!("SKIPPED: dropping CAP_NET_ADMIN needs root and setpriv");
        return;
    }
    let dir = scratch("cap", "10.0.2 (Debian)");
    let out = run(
        &[
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &dir,
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs CAP_NET_ADMIN"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_manifest_names_the_key() {
    let dir = scratch("bad", "10.0.2");
    let text = MANIFEST.replace("\"prefix\": 24", "\"prefix\": 40");
    std::fs::write(dir.join("manifest.json"), text).unwrap();
    let out = run(&[], &dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("manifest.json: key guest.prefix"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

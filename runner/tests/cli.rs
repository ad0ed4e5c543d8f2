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

/// Removes a scratch directory on every path (a failed assertion too).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `prefix... <imgrun> migrate-check <dir> --qemu <dir>/fake-qemu` with
/// `TMPDIR=<tmpdir>` and no `--log-dir` (the default log directory);
/// returns the output and imgrun's PID.
fn run_default_logs(imgrun: &Path, prefix: &[&str], dir: &Path, tmpdir: &Path) -> (Output, u32) {
    let (p, rest) = prefix.split_first().unwrap();
    let child = Command::new(p)
        .args(rest)
        .arg(imgrun)
        .arg("migrate-check")
        .arg(dir)
        .arg("--qemu")
        .arg(dir.join("fake-qemu"))
        .env("TMPDIR", tmpdir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // setpriv execs imgrun: the PID is imgrun's.
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

const AS_NOBODY: [&str; 5] = [
    "/usr/bin/setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// `/tmp/imgrun-<pid>-*` directories (the log directory of a run whose
/// TMPDIR was ignored).
fn log_dirs_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("imgrun-{pid}-");
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn without_cap_net_admin_the_advice_is_root_and_no_log_dir_is_left() {
    if !rustix::process::geteuid().is_root() || !Path::new(AS_NOBODY[0]).exists() {
        eprintln!("SKIPPED: dropping CAP_NET_ADMIN needs root and setpriv");
        return;
    }
    let dir = scratch("nocap-tmp", "10.0.2 (Debian)");
    let _cleanup = Cleanup(dir.clone());
    let tmpdir = dir.join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    std::fs::set_permissions(&tmpdir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (out, pid) = run_default_logs(
        Path::new(env!("CARGO_BIN_EXE_imgrun")),
        &AS_NOBODY,
        &dir,
        &tmpdir,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs CAP_NET_ADMIN"), "{err}");
    // File capabilities do not reach the `ip` commands imgrun runs: no setcap advice.
    assert!(!err.contains("setcap cap_net_admin"), "{err}");
    assert!(err.contains("run it as root"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&tmpdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{err}");
    assert!(log_dirs_of(pid).is_empty(), "{:?}", log_dirs_of(pid));
}

#[test]
fn file_capabilities_are_not_enough_and_it_says_so() {
    let setcap = Path::new("/usr/sbin/setcap");
    if !rustix::process::geteuid().is_root()
        || !Path::new(AS_NOBODY[0]).exists()
        || !setcap.exists()
    {
        eprintln!("SKIPPED: needs root, setpriv and setcap");
        return;
    }
    let dir = scratch("filecaps", "10.0.2 (Debian)");
    let _cleanup = Cleanup(dir.clone());
    // A copy of the binary with the capabilities the old advice gave.
    let copy = dir.join("imgrun");
    std::fs::copy(env!("CARGO_BIN_EXE_imgrun"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = Command::new(setcap)
        .arg("cap_net_admin,cap_sys_admin+ep")
        .arg(&copy)
        .status()
        .unwrap();
    if !st.success() {
        eprintln!("SKIPPED: setcap failed here ({st}); no file capabilities on this filesystem");
        return;
    }
    let tmpdir = dir.join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    std::fs::set_permissions(&tmpdir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (out, pid) = run_default_logs(&copy, &AS_NOBODY, &dir, &tmpdir);
    // glibc ignores TMPDIR in a binary with file capabilities: the log
    // directory would be /tmp/imgrun-<pid>-*. Removed before any assertion.
    let left = log_dirs_of(pid);
    for d in &left {
        let _ = std::fs::remove_dir_all(d);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not passed on"), "{err}");
    assert!(err.contains("run it as root"), "{err}");
    assert!(!err.contains("setcap cap_net_admin"), "{err}");
    assert!(left.is_empty(), "log directory left: {left:?}\n{err}");
}

#[test]
fn migrate_check_without_network_says_why_in_one_line() {
    let dir = scratch("nonet", "10.0.2 (Debian)");
    let _cleanup = Cleanup(dir.clone());
    let text = MANIFEST
        .replace("\"mac\": \"00:16:3e:01:02:03\",", "")
        .replace(
            "\"address\": \"10.99.0.2\", \"prefix\": 24, \"gateway\": \"10.99.0.1\",",
            "",
        );
    assert!(!text.contains("\"address\""), "fixture changed: {text}");
    std::fs::write(dir.join("manifest.json"), text).unwrap();
    for json in [false, true] {
        let out = run(&[], &dir, if json { &["--json"] } else { &[] });
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains("has no network"), "{err}");
        for serde_words in ["missing field", "invalid type", "expected", "serde"] {
            assert!(!err.contains(serde_words), "{err}");
        }
        if json {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["passed"], false);
            assert!(
                v["error"].as_str().unwrap().contains("has no network"),
                "{v}"
            );
        }
    }
}

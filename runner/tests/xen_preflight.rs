//! The Xen preflight through the real `imgrun` binary, with fake hosts: a
//! fake `ssh` on PATH runs each command on this machine and logs it, and a
//! fake `xl` prints the `xl info` fixture of the host it runs "on"
//! (`runner/tests/data/xl-info/`) and fails everything else. The log shows
//! what imgrun did on which host, in order: a refusal must have run
//! `xl info` on every host and nothing else anywhere.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A manifest as the builder writes it (shared with the unit tests of `guest.rs`).
const MANIFEST: &str = include_str!("data/manifest.json");

const SSH: &str = r#"#!/bin/sh
# fake ssh [-F file] [-o opt]... -- DEST COMMAND: runs COMMAND here, logged.
while [ $# -gt 0 ]; do
    case $1 in
    --) shift; break ;;
    -F|-o) shift 2 ;;
    *) shift ;;
    esac
done
dest=$1
shift
printf '%s: %s\n' "$dest" "$*" >>"$FAKE_DIR/log"
FAKE_HOST=${dest#*@} exec sh -c "$*"
"#;

const XL: &str = r#"#!/bin/sh
# fake xl: `info` prints the host's fixture; anything else fails.
case $1 in
info) exec cat "$FAKE_DIR/xl-info.${FAKE_HOST:-localhost}" ;;
*) echo "fake xl: $* is not faked" >&2; exit 1 ;;
esac
"#;

/// A guest directory (manifest with an xl.cfg of `domain_type`) and fake
/// hosts whose `xl info` is the fixture named per host.
struct Setup {
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/xl-info")
        .join(name)
}

impl Setup {
    fn new(tag: &str, type_line: &str, hosts: &[(&str, &str)]) -> Setup {
        let dir = std::env::temp_dir().join(format!("imgrun-xen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let guest = dir.join("guest");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&guest).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for f in ["vmlinuz", "initrd.img", "rootfs.img"] {
            std::fs::write(guest.join(f), b"x").unwrap();
        }
        let cfg = format!(
            "name = \"t\"\n{type_line}kernel = \"{g}/vmlinuz\"\nramdisk = \"{g}/initrd.img\"\n\
             disk = [ 'format=raw, vdev=xvda, access=rw, target={g}/rootfs.img' ]\n",
            g = guest.display()
        );
        std::fs::write(guest.join("t.cfg"), &cfg).unwrap();
        let mut m: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        m["outputs"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "role": "xl-config", "file": "t.cfg", "size": cfg.len(),
                "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
            }));
        std::fs::write(guest.join("manifest.json"), m.to_string()).unwrap();
        for (name, text) in [("ssh", SSH), ("xl", XL)] {
            std::fs::write(bin.join(name), text).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        for (host, file) in hosts {
            std::fs::copy(fixture(file), dir.join(format!("xl-info.{host}"))).unwrap();
        }
        std::fs::write(dir.join("log"), "").unwrap();
        Setup { dir }
    }

    /// `imgrun migrate-check --xen SRC DST --json <guest>` on the fake hosts.
    fn run(&self, src: &str, dst: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new(env!("CARGO_BIN_EXE_imgrun"))
            .args([
                "migrate-check",
                "--xen",
                src,
                dst,
                "--json",
                "--boot-timeout-s",
                "1",
            ])
            .arg(self.dir.join("guest"))
            .env("PATH", path)
            .env("FAKE_DIR", &self.dir)
            .env_remove("IMGRUN_SSH_CONFIG")
            .output()
            .unwrap()
    }

    /// What ran on the fake ssh hosts, `DEST: COMMAND` per line.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn a_host_without_shadow_paging_is_refused_before_anything_is_done() {
    let s = Setup::new(
        "refuse",
        "type = \"pv\"\n",
        &[("h1", "4.17.5+72-svm.txt"), ("h2", "4.17.7+13-svm.txt")],
    );
    let out = s.run("root@h1", "root@h2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "preflight: host root@h2 (Xen 4.17.7) cannot live-migrate PV guest t: its hypervisor has no shadow paging (xl info virt_caps: pv hvm hap gnttab-v1 gnttab-v2), which PV migration needs for log-dirty tracking. What works there: a PVH guest"
        ),
        "{err}"
    );
    assert!(!err.contains("host root@h1 (Xen"), "{err}");
    // Both hosts were asked, and nothing else ran anywhere: no stat, no copy, no create.
    assert_eq!(s.log(), ["root@h1: xl info", "root@h2: xl info"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot live-migrate PV guest t"),
        "{v}"
    );
    assert_eq!(v["preflight"]["guest_type"], "pv");
    assert_eq!(v["preflight"]["hosts"][0]["name"], "root@h1");
    assert_eq!(v["preflight"]["hosts"][0]["virt_caps"][3], "shadow");
    assert_eq!(v["preflight"]["hosts"][1]["xen_version"], "4.17.7");
    assert_eq!(
        v["preflight"]["hosts"][1]["build"]["build_id"],
        "151b373fd64b321593bf987fd923cd10dabadac4"
    );
    assert_eq!(v["preflight"]["refused"][0]["host"], "root@h2");
}

#[test]
fn a_single_host_migration_needs_log_dirty_too() {
    let s = Setup::new("local", "", &[("h2", "4.17.7+13.txt")]);
    let out = s.run("root@h2", "root@h2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // No `type` line: a PV guest, as xl reads it.
    assert!(err.contains("cannot live-migrate PV guest t"), "{err}");
    assert!(err.contains("a PVH guest would need hvm and hap"), "{err}");
    assert_eq!(s.log(), ["root@h2: xl info"]);
}

#[test]
fn fit_hosts_pass_the_preflight_and_only_then_get_files() {
    // PVH on the security build (HAP) and on the pinned one.
    let s = Setup::new(
        "fit",
        "type = \"pvh\"\n",
        &[("h1", "4.17.5+72-svm.txt"), ("h2", "4.17.7+13-svm.txt")],
    );
    let out = s.run("root@h1", "root@h2");
    let err = String::from_utf8_lossy(&out.stderr);
    // The fake xl cannot create the guest: an error after the preflight.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("preflight: every host can run and live-migrate PVH guest t"),
        "{err}"
    );
    assert!(
        err.contains("xen host root@h2: Xen 4.17.7, virt_caps pv hvm hap gnttab-v1 gnttab-v2, built Wed Nov  4 16:52:28 UTC 2026"),
        "{err}"
    );
    assert!(err.contains("xl create"), "{err}");
    let log = s.log();
    assert_eq!(
        log[..2],
        ["root@h1: xl info", "root@h2: xl info"],
        "{log:?}"
    );
    let first_stat = log.iter().position(|l| l.contains(": stat ")).unwrap();
    assert_eq!(first_stat, 2, "{log:?}");
    assert!(
        log.iter().skip(2).all(|l| !l.ends_with("xl info")),
        "{log:?}"
    );
    assert!(
        log.last().unwrap().starts_with("root@h1: xl create "),
        "{log:?}"
    );
}

#[test]
fn an_hvm_config_is_refused_before_any_host_is_asked() {
    let s = Setup::new("hvm", "type = \"hvm\"\n", &[("h1", "4.17.5+72-svm.txt")]);
    let out = s.run("root@h1", "root@h1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("preflight: guest t is an HVM domain"), "{err}");
    assert!(s.log().is_empty(), "{:?}", s.log());
}

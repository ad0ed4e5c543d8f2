//! The Xen preflight, and `imgrun run --xen`, through the real `imgrun`
//! binary, with fake hosts: a fake `ssh` on PATH runs each command on this
//! machine and logs it, and a fake `xl` prints the `xl info` fixture of the
//! host it runs "on" (`runner/tests/data/xl-info/`) and fails everything
//! else. The log shows what imgrun did on which host, in order: a refusal
//! must have run `xl info` on every host and nothing else anywhere. For
//! `run` ([`Setup::with_guests`]) the fake `xl` also has a domain: `create`,
//! `list`, `destroy`, and `console`, a shell that runs each line typed into
//! it, as the guest's console shell would (with a `stty` that does nothing
//! and a `poweroff` that ends the domain).

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
# fake xl: `info` prints the host's fixture; with $FAKE_DIR/guests, a domain
# (the file running.HOST): create, list, console, destroy; anything else fails.
h=${FAKE_HOST:-localhost}
case $1 in
info) exec cat "$FAKE_DIR/xl-info.$h" ;;
esac
if [ -e "$FAKE_DIR/guests" ]; then
    case $1 in
    create) : >"$FAKE_DIR/running.$h"; exit 0 ;;
    list)
        [ -e "$FAKE_DIR/running.$h" ] || { echo "fake xl: no domain $2" >&2; exit 1; }
        printf 'Name ID Mem VCPUs State Time(s)\n%s 5 512 1 -b---- 0.1\n' "$2"; exit 0 ;;
    console) [ -e "$FAKE_DIR/running.$h" ] || exit 1; exec "$FAKE_DIR/guest-shell" ;;
    destroy) rm -f "$FAKE_DIR/running.$h"; exit 0 ;;
    esac
fi
echo "fake xl: $* is not faked" >&2; exit 1
"#;

/// The fake domain's console shell: runs each line typed (`^U` dropped,
/// the kernel's log level a file of its own), prompt and all; stderr is
/// the console too.
const GUEST_SHELL: &str = r#"#!/bin/sh
exec 2>&1
PATH=$FAKE_DIR/guestbin:$PATH
printf '/ # '
while IFS= read -r line; do
    line=$(printf '%s' "$line" | tr -d '\025' | sed "s,/proc/sys/kernel/printk,$FAKE_DIR/printk,g")
    eval "$line"
    printf '/ # '
done
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
        let mut args = vec![
            "migrate-check",
            "--xen",
            src,
            dst,
            "--json",
            "--boot-timeout-s",
            "1",
        ];
        let guest = self.guest();
        args.push(&guest);
        self.imgrun(&args)
    }

    fn guest(&self) -> String {
        self.dir.join("guest").to_string_lossy().into_owned()
    }

    /// `imgrun ARGS` on the fake hosts.
    fn imgrun(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new(env!("CARGO_BIN_EXE_imgrun"))
            .args(args)
            .env("PATH", path)
            .env("FAKE_DIR", &self.dir)
            .env_remove("IMGRUN_SSH_CONFIG")
            .output()
            .unwrap()
    }

    /// The fake `xl` gets a domain to create, list, type into and destroy.
    fn with_guests(self) -> Setup {
        let guestbin = self.dir.join("guestbin");
        std::fs::create_dir_all(&guestbin).unwrap();
        let scripts = [
            (self.dir.join("guest-shell"), GUEST_SHELL),
            (guestbin.join("stty"), "#!/bin/sh\nexit 0\n"),
            (
                guestbin.join("poweroff"),
                "#!/bin/sh\nrm -f \"$FAKE_DIR/running.$FAKE_HOST\"\n",
            ),
        ];
        for (path, text) in scripts {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(self.dir.join("printk"), "7\t4\t1\t7\n").unwrap();
        std::fs::write(self.dir.join("guests"), "").unwrap();
        self
    }

    fn running_on(&self, host: &str) -> bool {
        self.dir.join(format!("running.{host}")).exists()
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

/// `imgrun run --xen`: on a host that could not live-migrate the guest (no
/// shadow paging) but can run it; the command typed into `xl console`, its
/// output and exit code imgrun's, the domain powered off by the guest.
#[test]
fn run_on_a_xen_host_types_the_command_into_xl_console() {
    let s = Setup::new("run", "type = \"pv\"\n", &[("h1", "4.17.7+13-svm.txt")]).with_guests();
    let guest = s.guest();
    let out = s.imgrun(&[
        "run",
        "--xen",
        "root@h1",
        &guest,
        "--",
        "sh",
        "-c",
        "echo \"on $FAKE_HOST in $(pwd)\"; echo to-stderr >&2; exit 7",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "on h1 in /\nto-stderr\n"
    );
    assert!(
        err.contains("preflight: host root@h1 could not live-migrate PV guest t (its hypervisor has no shadow paging); it can run it"),
        "{err}"
    );
    let log = s.log();
    let at = |cmd: &str| {
        log.iter()
            .position(|l| l.starts_with(&format!("root@h1: {cmd}")))
    };
    assert!(
        at("xl create ").unwrap() < at("xl console t").unwrap(),
        "{log:?}"
    );
    // The guest powered itself off: nothing to destroy.
    assert!(at("xl destroy").is_none(), "{log:?}");
    assert!(!s.running_on("h1"), "{log:?}");
    // The kernel's log level is back as it was.
    assert_eq!(
        std::fs::read_to_string(s.dir.join("printk")).unwrap(),
        "7\n"
    );
}

#[test]
fn run_refuses_a_guest_already_running_and_keeps_one_when_asked() {
    let s = Setup::new("keep", "type = \"pv\"\n", &[("h1", "4.17.5+72-svm.txt")]).with_guests();
    let guest = s.guest();
    std::fs::write(s.dir.join("running.h1"), "").unwrap();
    let out = s.imgrun(&["run", "--xen", "root@h1", &guest, "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("guest t is already running on root@h1 (domain 5)"),
        "{err}"
    );
    assert!(
        s.running_on("h1"),
        "the running guest was touched: {:?}",
        s.log()
    );
    assert!(
        !s.log().iter().any(|l| l.contains("xl create")),
        "{:?}",
        s.log()
    );

    std::fs::remove_file(s.dir.join("running.h1")).unwrap();
    let out = s.imgrun(&["run", "--xen", "root@h1", "--keep", &guest, "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(s.running_on("h1"), "{err}");
    assert!(
        err.contains("console (Ctrl-] leaves): ssh -t root@h1 xl console t"),
        "{err}"
    );
    assert!(err.contains("stop it: ssh root@h1 xl shutdown t"), "{err}");
}

#[test]
fn run_timeout_destroys_the_domain() {
    let s = Setup::new("timeout", "type = \"pv\"\n", &[("h1", "4.17.5+72-svm.txt")]).with_guests();
    let guest = s.guest();
    // (The fake's `sleep` outlives its console shell, killed with the link,
    // by a second; a real guest's goes with the domain.)
    let out = s.imgrun(&[
        "run",
        "--xen",
        "root@h1",
        "--timeout",
        "1",
        &guest,
        "--",
        "sleep",
        "2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{err}");
    assert!(
        s.log().iter().any(|l| l == "root@h1: xl destroy t"),
        "{:?}",
        s.log()
    );
    assert!(!s.running_on("h1"));
}

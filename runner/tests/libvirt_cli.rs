//! The libvirt backend's refusals through the binary, before anything is
//! defined anywhere: bad URIs, routes libvirt cannot take, a guest already
//! running on another host. `virsh` is a fake on PATH that logs each argv
//! and answers like virsh (the real daemons are in tests/libvirt/run-qemu.sh
//! and the nested-Xen test).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

const MANIFEST: &str = include_str!("data/manifest.json");

const QEMU_XML: &str = "<domain type='kvm'>
  <name>t</name>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>KERNEL</kernel><initrd>INITRD</initrd></os>
  <devices><disk type='file' device='disk'><source file='DISK'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
";

/// Fake virsh: logs its argv to $FAKE_VIRSH_LOG; `domstate t` answers
/// "running" on URIs containing $FAKE_VIRSH_RUNNING_ON, else fails as
/// virsh does for an unknown domain; `hostname` answers the socket's
/// directory name; `domcapabilities` succeeds.
const FAKE_VIRSH: &str = r#"#!/bin/sh
echo "$*" >>"$FAKE_VIRSH_LOG"
uri=$3
shift 3
case "$1" in
version) printf 'Running hypervisor: QEMU 10.0.2\nRunning against daemon: 11.3.0\n' ;;
hostname) echo "host-$(echo "$uri" | sed 's/.*socket=//; s|/.*||')" ;;
domcapabilities) echo '<domainCapabilities/>' ;;
domstate)
    case "$uri" in
    *"$FAKE_VIRSH_RUNNING_ON"*) [ -n "$FAKE_VIRSH_RUNNING_ON" ] && { echo running; exit 0; } ;;
    esac
    echo "error: failed to get domain '$2'" >&2; exit 1 ;;
*) echo "error: fake virsh: $1 not expected" >&2; exit 1 ;;
esac
"#;

struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("imgrun-lvcli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = dir.join("g");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let manifest = MANIFEST.replace(
            "\"outputs\": [",
            "\"outputs\": [\n    { \"role\": \"libvirt-qemu\", \"file\": \"t.qemu.xml\", \"size\": 1, \"sha256\": \"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\" },",
        );
        std::fs::write(g.join("manifest.json"), manifest).unwrap();
        for f in ["vmlinuz", "initrd.img", "rootfs.img"] {
            std::fs::write(g.join(f), b"x").unwrap();
        }
        let xml = QEMU_XML
            .replace("KERNEL", &g.join("vmlinuz").display().to_string())
            .replace("INITRD", &g.join("initrd.img").display().to_string())
            .replace("DISK", &g.join("rootfs.img").display().to_string());
        std::fs::write(g.join("t.qemu.xml"), xml).unwrap();
        let virsh = dir.join("bin/virsh");
        std::fs::write(&virsh, FAKE_VIRSH).unwrap();
        std::fs::set_permissions(&virsh, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    fn guest(&self) -> PathBuf {
        self.dir.join("g")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("virsh.log")).unwrap_or_default()
    }

    fn run(&self, args: &[&str], running_on: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(env!("CARGO_BIN_EXE_imgrun"))
            .arg("migrate-check")
            .args(args)
            .arg(self.guest())
            .env("PATH", path)
            .env("FAKE_VIRSH_LOG", self.dir.join("virsh.log"))
            .env("FAKE_VIRSH_RUNNING_ON", running_on)
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uri(s: &Scratch, host: &str) -> String {
    format!("qemu+unix:///system?socket={}/{host}/sock", s.dir.display())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A local URI whose socket path starts with `host` (the fake's hostname).
fn socket_uri(host: &str) -> String {
    format!("qemu+unix:///system?socket={host}/sock")
}

#[test]
fn a_bad_uri_is_refused_once_before_virsh_runs() {
    let s = Scratch::new("bad");
    for (bad, want) in [
        ("qemu+ssh://h;reboot/system", "the host must be a name"),
        ("qemu+ssh://h1/system\n--p2p", "spaces, control"),
        ("qemu+ssh://h/etc", "the path must be /system or /session"),
        ("lxc:///system", "xen (libxl) and qemu only"),
    ] {
        let out = s.run(&["--libvirt", &uri(&s, "a"), bad], "");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        let line = format!("libvirt URI {bad:?}");
        assert_eq!(err.matches(&line).count(), 1, "{bad}: {err}");
        assert!(err.contains(want), "{bad}: {err}");
    }
    assert_eq!(s.log(), "", "virsh ran for a refused URI");
}

#[test]
fn routes_libvirt_cannot_take_are_refused() {
    let s = Scratch::new("routes");
    let a = socket_uri("a");
    for (args, want) in [
        (vec!["--hosts".to_string(), a.clone()], "at least two URIs"),
        (
            vec!["--libvirt".to_string(), a.clone(), a.clone()],
            "named twice",
        ),
        (
            vec![
                "--libvirt".to_string(),
                a.clone(),
                "xen:///system".to_string(),
            ],
            "a domain migrates within one driver",
        ),
        (
            vec![
                "--libvirt".into(),
                a.clone(),
                socket_uri("b"),
                "--stop-first".into(),
            ],
            "--stop-first",
        ),
    ] {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = s.run(&argv, "");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(s.log(), "", "virsh ran for a refused route");
    // Two backends at once: clap refuses.
    let out = s.run(
        &["--libvirt", &a, "qemu:///system", "--xen", "h1", "h2"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_guest_running_elsewhere_is_not_defined_again() {
    let s = Scratch::new("elsewhere");
    let (a, b) = (socket_uri("a"), socket_uri("b"));
    let out = s.run(&["--libvirt", &a, &b, "--virt-type", "qemu"], "b/sock");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("domain t is already running on {b}")),
        "{err}"
    );
    assert!(err.contains("virsh -c"), "says how to clear the way: {err}");
    let log = s.log();
    assert!(log.contains("domstate t"), "{log}");
    assert!(!log.contains("define") && !log.contains("start"), "{log}");
    // The TCG copy of the XML was written for the run and removed.
    assert!(err.contains("type='qemu'"), "{err}");
}

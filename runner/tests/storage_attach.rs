//! `imgrun::storage::attach` against real servers on loopback, on this
//! machine (`XenHost::Local`; no Xen needed): a test-owned `tgtd` (never
//! the system's: its own control port and portal) with this machine's
//! open-iscsi, and a test-owned `nbd-server` with this machine's
//! `nbd-client`.
//!
//! What runs depends on the kernel, and each test says what it found: a
//! kernel without an iSCSI initiator (`iscsi_tcp`) or NBD driver (the
//! Firecracker VMs CI runs on have neither, and no modules) gets the
//! "kernel has no …" refusal checked instead of the login or connection,
//! and nbd-client's own failures are still checked against the real server
//! (it negotiates before it asks the kernel). Without udev no
//! `/dev/disk/by-path` link appears; the test then checks that attach says
//! so and logs out again; the link is never faked.
//!
//! Every session, connection and server the tests make is undone on every
//! exit path (guards with `Drop`; processes killed by their own handle).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use guest_contract::storage::Storage;
use imgrun::cancel::Cancel;
use imgrun::storage::attach::nbd_client::Failure;
use imgrun::storage::attach::{self, StorageError};
use imgrun::xen::host::XenHost;

mod servers;
use servers::{NbdServer, Tgtd, free_port, is_root};

const IQN: &str = "iqn.2026-12.org.imgbuild.test:attach";
const LUN_BYTES: u64 = 64 << 20;
const EXPORT: &str = "attach-test";
const EXPORT_BYTES: u64 = 32 << 20;

fn have(tool: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

fn run(argv: &[&str]) -> std::process::Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// A child process killed (by its handle) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a process with this command name runs (from /proc).
fn running(comm: &str) -> bool {
    std::fs::read_dir("/proc").is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
    })
}

fn udev_runs() -> bool {
    Path::new("/run/udev/control").exists()
}

/// Whether the kernel can be an iSCSI initiator, loading `iscsi_tcp` if it
/// is a module.
fn kernel_has_iscsi() -> bool {
    let present = || Path::new("/sys/class/iscsi_transport/tcp").exists();
    present() || (run(&["modprobe", "iscsi_tcp"]).status.success() && present())
}

/// Whether the kernel has an NBD driver, loading `nbd` if it is a module.
fn kernel_has_nbd() -> bool {
    let present = || Path::new("/sys/block/nbd0").exists();
    present() || (run(&["modprobe", "nbd"]).status.success() && present())
}

fn iscsi(iqn: &str, portal: SocketAddr) -> Storage {
    Storage::Iscsi {
        target: iqn.parse().unwrap(),
        portal,
        lun: 1,
    }
}

/// Logs out of the target and deletes its node record on drop, whatever
/// the test did.
struct IscsiCleanup(SocketAddr);

impl Drop for IscsiCleanup {
    fn drop(&mut self) {
        let p = self.0.to_string();
        let _ = run(&["iscsiadm", "-m", "node", "-T", IQN, "-p", &p, "--logout"]);
        let _ = run(&[
            "iscsiadm", "-m", "node", "-o", "delete", "-T", IQN, "-p", &p,
        ]);
    }
}

fn logged_in(portal: SocketAddr) -> bool {
    let o = run(&["iscsiadm", "-m", "session"]);
    let want = format!("{portal},");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .any(|l| l.contains(&want) && l.contains(IQN))
}

fn skip_without(tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: attaching storage needs root");
        return true;
    }
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {} not installed (scripts/setup installs open-iscsi, tgt, nbd-client, nbd-server)",
            missing.join(", ")
        );
        return true;
    }
    false
}

#[test]
fn iscsi_attach_against_tgtd() {
    if skip_without(&["tgtd", "tgtadm", "iscsiadm", "iscsid"]) {
        return;
    }
    let Some(tgt) = Tgtd::start() else { return };
    let lun_dir = tempfile::tempdir().unwrap();
    let lun = lun_dir.path().join("lun.img");
    std::fs::File::create(&lun)
        .and_then(|f| f.set_len(LUN_BYTES))
        .unwrap();
    tgt.target(IQN, &lun, false, &[]);
    let _cleanup = IscsiCleanup(tgt.portal());
    let host = XenHost::Local;
    let cancel = Cancel::default();
    let s = iscsi(IQN, tgt.portal());
    let what = format!("iscsi {IQN} at {}, LUN 1", tgt.portal());

    if !kernel_has_iscsi() {
        eprintln!(
            "NOTE: this kernel has no iSCSI initiator (no /sys/class/iscsi_transport/tcp, and \
             `modprobe iscsi_tcp` fails): the login, the by-path link, a wrong IQN and a closed \
             port were not tried here; checking the refusal instead"
        );
        let e = attach::attach(&host, &s, &cancel).unwrap_err();
        assert!(matches!(e, StorageError::HostSetup { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "host localhost: {what}: the kernel has no iSCSI initiator (iscsi_tcp)"
            )),
            "{e}"
        );
        assert!(e.contains("iSCSI driver not found"), "{e}");
        return;
    }

    // iscsiadm's login goes through iscsid: start one for the test if
    // none runs, and stop it (by its handle) after.
    let _iscsid = (!running("iscsid")).then(|| {
        eprintln!("NOTE: iscsid was not running; started `iscsid -f` for this test");
        let c = Command::new("iscsid")
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting iscsid");
        std::thread::sleep(Duration::from_millis(500));
        Proc(c)
    });

    // A target the portal does not offer, a portal nobody listens on.
    let wrong = iscsi("iqn.2026-12.org.imgbuild.test:nope", tgt.portal());
    let e = attach::attach(&host, &wrong, &cancel)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "host localhost: portal {} does not offer target iqn.2026-12.org.imgbuild.test:nope (offers: {IQN})",
            tgt.portal()
        )
    );
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let e = attach::attach(&host, &iscsi(IQN, closed), &cancel).unwrap_err();
    assert!(matches!(e, StorageError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("cannot reach portal {closed}")),
        "{e}"
    );

    if !udev_runs() {
        eprintln!(
            "NOTE: udev is not running here (no /run/udev/control): no /dev/disk/by-path link \
             can appear; checking that attach says so and logs out again"
        );
        let e = attach::attach(&host, &s, &cancel).unwrap_err().to_string();
        assert!(e.contains("udev is not running on this host"), "{e}");
        assert!(!logged_in(tgt.portal()), "attach left its session behind");
        return;
    }

    let a = attach::attach(&host, &s, &cancel).unwrap();
    assert!(a.made_here());
    assert_eq!(a.target, s.xl_target());
    assert!(
        a.target.starts_with("/dev/disk/by-path/ip-127.0.0.1:"),
        "{}",
        a.target
    );
    let md = std::fs::metadata(&a.target).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_block_device(
        &md.file_type()
    ));
    assert_eq!(a.size, Some(LUN_BYTES));
    assert!(a.device.as_deref().unwrap().starts_with("/dev/sd"), "{a:?}");
    assert!(logged_in(tgt.portal()));

    // Again: nothing to do, and nothing for its release to undo.
    let again = attach::check(&host, &s, LUN_BYTES, &cancel).unwrap();
    assert!(!again.made_here());
    assert_eq!(again.device, a.device);
    again.release(&host, &cancel).unwrap();
    assert!(logged_in(tgt.portal()));
    let e = attach::check(&host, &s, LUN_BYTES + 1, &cancel).unwrap_err();
    assert!(matches!(e, StorageError::TooSmall { .. }), "{e:?}");
    assert!(
        logged_in(tgt.portal()),
        "a check that did not log in logged out"
    );

    a.release(&host, &cancel).unwrap();
    assert!(!logged_in(tgt.portal()));
    assert!(!Path::new(&a.target).exists());
    assert!(!attach::detach(&host, &s, &cancel).unwrap());
}

fn nbd(port: u16, export: &str) -> Storage {
    Storage::Nbd {
        server: format!("127.0.0.1:{port}").parse().unwrap(),
        export: export.parse().unwrap(),
    }
}

/// Disconnects whatever the test's link points at, on drop.
struct NbdCleanup(Storage);

impl Drop for NbdCleanup {
    fn drop(&mut self) {
        let _ = attach::detach(&XenHost::Local, &self.0, &Cancel::default());
    }
}

#[test]
fn nbd_attach_against_nbd_server() {
    if skip_without(&["nbd-server", "nbd-client"]) {
        return;
    }
    let export_dir = tempfile::tempdir().unwrap();
    let export = export_dir.path().join("export.img");
    std::fs::File::create(&export)
        .and_then(|f| f.set_len(EXPORT_BYTES))
        .unwrap();
    let Some(srv) = NbdServer::start(&[(EXPORT, &export)]) else {
        return;
    };
    let host = XenHost::Local;
    let cancel = Cancel::default();
    let s = nbd(srv.port, EXPORT);
    let _cleanup = NbdCleanup(s.clone());
    let what = format!("nbd export {EXPORT} at 127.0.0.1:{}", srv.port);

    if !kernel_has_nbd() {
        eprintln!(
            "NOTE: this kernel has no NBD driver (no /sys/block/nbd0, and `modprobe nbd` fails): \
             no device was connected here; checking the refusal, and nbd-client's own failures \
             against the server (it negotiates before it asks the kernel)"
        );
        let e = attach::attach(&host, &s, &cancel).unwrap_err();
        assert!(matches!(e, StorageError::HostSetup { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "host localhost: {what}: the kernel has no nbd driver"
            )),
            "{e}"
        );
        let port = srv.port.to_string();
        let closed = free_port().to_string();
        for (export, port, want) in [
            ("nope", port.as_str(), Failure::NoExport),
            (EXPORT, closed.as_str(), Failure::Unreachable),
            (EXPORT, port.as_str(), Failure::NoDriver),
        ] {
            let o = run(&["nbd-client", "-N", export, "127.0.0.1", port, "/dev/nbd0"]);
            assert!(!o.status.success());
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(Failure::of(&err), want, "{export} {port}: {err}");
        }
        return;
    }

    let wrong = nbd(srv.port, "nope");
    let e = attach::attach(&host, &wrong, &cancel)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "host localhost: NBD server 127.0.0.1:{} does not offer export nope (offers: {EXPORT})",
            srv.port
        )
    );
    let closed = nbd(free_port(), EXPORT);
    let e = attach::attach(&host, &closed, &cancel).unwrap_err();
    assert!(matches!(e, StorageError::Unreachable { .. }), "{e:?}");

    let a = attach::attach(&host, &s, &cancel).unwrap();
    assert!(a.made_here());
    let dev = a.device.clone().unwrap();
    assert!(dev.starts_with("/dev/nbd"), "{a:?}");
    assert_eq!(std::fs::read_link(&a.target).unwrap(), Path::new(&dev));
    assert_eq!(a.size, Some(EXPORT_BYTES));
    let sys = format!("/sys/block/{}/pid", dev.trim_start_matches("/dev/"));
    assert!(Path::new(&sys).exists());

    let again = attach::attach(&host, &s, &cancel).unwrap();
    assert!(!again.made_here());
    assert_eq!(again.device.as_deref(), Some(dev.as_str()));

    a.release(&host, &cancel).unwrap();
    assert!(!Path::new(&a.target).exists());
    assert!(!Path::new(&sys).exists(), "{dev} still connected");
    assert!(!attach::detach(&host, &s, &cancel).unwrap());
}

/// A guest directory whose manifest records `storage` (JSON), with the
/// files the runner looks for.
fn guest_dir(storage: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let fixture = include_str!("data/manifest.json");
    let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    v["storage"] = serde_json::from_str(storage).unwrap();
    std::fs::write(d.path().join("manifest.json"), v.to_string()).unwrap();
    for f in ["rootfs.img", "initrd.img", "vmlinuz"] {
        std::fs::write(d.path().join(f), b"x").unwrap();
    }
    d
}

fn imgrun(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgrun"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `imgrun storage check` names each host that cannot reach the storage
/// and exits 1; `detach` of a storage nothing attached says so.
#[test]
fn cli_check_and_detach() {
    let closed = free_port();
    let d = guest_dir(&format!(
        r#"{{"kind": "nbd", "server": "127.0.0.1:{closed}", "export": "x"}}"#
    ));
    let dir = d.path().to_str().unwrap();
    let o = imgrun(&["storage", "check", dir, "localhost"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        out.starts_with(&format!(
            "FAIL: host localhost: nbd export x at 127.0.0.1:{closed}"
        )),
        "{out}"
    );
    let d = guest_dir(r#"{"kind": "phy", "device": "/dev/imgrun-no-such-device"}"#);
    let dir = d.path().to_str().unwrap();
    let o = imgrun(&["storage", "detach", dir, "localhost"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "host localhost: phy /dev/imgrun-no-such-device: was not attached\n"
    );
    let o = imgrun(&["storage", "check", dir, "localhost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "FAIL: host localhost: phy /dev/imgrun-no-such-device: /dev/imgrun-no-such-device is not a block device on this host\n"
    );
    let o = imgrun(&["storage", "attach", dir, "no host!"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The Xen backend refuses, before it runs anything on a host, a guest
/// whose xl.cfg's disk is not where its manifest's shared storage is.
#[test]
fn xen_backend_refuses_a_disk_elsewhere_than_the_storage() {
    use imgrun::migrate::CheckOptions;
    use imgrun::xen::{XenBackend, XenConfig, XenError};
    let d = guest_dir(
        r#"{"kind": "iscsi", "target": "iqn.2026-12.org.imgbuild:t", "portal": "127.0.0.1:3260", "lun": 1}"#,
    );
    let manifest = d.path().join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let mut cfg_entry = v["outputs"][0].clone();
    cfg_entry["role"] = "xl-config".into();
    cfg_entry["file"] = "t.cfg".into();
    v["outputs"].as_array_mut().unwrap().push(cfg_entry);
    std::fs::write(&manifest, v.to_string()).unwrap();
    std::fs::write(
        d.path().join("t.cfg"),
        "name = 't'\nkernel = '/srv/t/vmlinuz'\ndisk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/t/rootfs.img' ]\n",
    )
    .unwrap();
    let g = imgrun::guest::GuestDir::load(d.path()).unwrap();
    let e = XenBackend::new(
        &g,
        XenConfig::new("localhost", "localhost"),
        &CheckOptions::default(),
        &Cancel::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, XenError::StorageTarget { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with(
            "t.cfg: the disk target /srv/t/rootfs.img is not the manifest's storage (iscsi iqn.2026-12.org.imgbuild:t at 127.0.0.1:3260, LUN 1), which is at /dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:t-lun-1: rebuild the guest"
        ),
        "{e}"
    );
}

/// A block device here with a size, for a `phy` storage (`None`: none).
fn some_block_device() -> Option<String> {
    ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"]
        .into_iter()
        .find(|d| {
            let o = run(&["blockdev", "--getsize64", d]);
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() != "0"
        })
        .map(str::to_string)
}

/// Fake Xen hosts for the backend (as `xen_preflight.rs` does): a fake
/// `ssh` on PATH runs each command here and logs it; a fake `xl` answers
/// `info` with a fixture and fails the rest, so the run ends at `xl create`.
const FAKE_SSH: &str = r#"#!/bin/sh
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
exec sh -c "$*"
"#;

const FAKE_XL: &str = r#"#!/bin/sh
case $1 in
info) exec cat "$FAKE_DIR/xl-info" ;;
*) echo "fake xl: $* is not faked" >&2; exit 1 ;;
esac
"#;

/// `migrate-check --xen` with a `phy` disk: every host is checked for the
/// device after `xl info` and before anything else; the disk is never
/// stat'ed or copied as a file; the kernel, ramdisk and xl.cfg still are
/// looked at; only then `xl create`.
#[test]
fn xen_backend_attaches_every_host_before_create_and_never_copies_the_disk() {
    use std::os::unix::fs::PermissionsExt;
    let Some(dev) = some_block_device() else {
        eprintln!("SKIPPED: no block device with a size here");
        return;
    };
    let d = guest_dir(&format!(r#"{{"kind": "phy", "device": "{dev}"}}"#));
    let g = d.path();
    let cfg = format!(
        "name = \"t\"\ntype = \"pvh\"\nkernel = \"{k}\"\nramdisk = \"{r}\"\n\
         disk = [ 'format=raw, vdev=xvda, access=rw, target={dev}' ]\n",
        k = g.join("vmlinuz").display(),
        r = g.join("initrd.img").display(),
    );
    std::fs::write(g.join("t.cfg"), &cfg).unwrap();
    let manifest = g.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let mut entry = v["outputs"][0].clone();
    entry["role"] = "xl-config".into();
    entry["file"] = "t.cfg".into();
    v["outputs"].as_array_mut().unwrap().push(entry);
    std::fs::write(&manifest, v.to_string()).unwrap();
    let fake = tempfile::tempdir().unwrap();
    let bin = fake.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, text) in [("ssh", FAKE_SSH), ("xl", FAKE_XL)] {
        std::fs::write(bin.join(name), text).unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xl-info/4.17.5+72-svm.txt");
    std::fs::copy(fixture, fake.path().join("xl-info")).unwrap();
    std::fs::write(fake.path().join("log"), "").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_imgrun"))
        .args([
            "migrate-check",
            "--xen",
            "root@h1",
            "root@h2",
            "--boot-timeout-s",
            "1",
        ])
        .arg(g)
        .env("PATH", path)
        .env("FAKE_DIR", fake.path())
        .env_remove("IMGRUN_SSH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let size = String::from_utf8_lossy(&run(&["blockdev", "--getsize64", &dev]).stdout)
        .trim()
        .to_string();
    for h in ["root@h1", "root@h2"] {
        let line = format!("xen host {h}: phy {dev}: {dev} is ");
        assert!(err.contains(&line), "{err}");
        assert!(
            err.contains(&format!(", {size} bytes (already attached)")),
            "{err}"
        );
    }
    let log: Vec<String> = std::fs::read_to_string(fake.path().join("log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let at = |want: &str| {
        log.iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("no {want:?} in {log:#?}"))
    };
    let attach_h2 = at(&format!("root@h2: blockdev --getsize64 {dev}"));
    assert!(at("root@h2: xl info") < at(&format!("root@h1: test -b {dev}")));
    assert!(
        at(&format!("root@h1: blockdev --getsize64 {dev}"))
            < at(&format!("root@h2: test -b {dev}"))
    );
    let first_stat = log.iter().position(|l| l.contains(": stat ")).unwrap();
    assert!(attach_h2 < first_stat, "{log:#?}");
    let create = log.iter().position(|l| l.contains("xl create")).unwrap();
    assert!(first_stat < create, "{log:#?}");
    // The disk was attached, never stat'ed or copied; the other files were.
    assert!(
        !log.iter().any(|l| l.contains("stat") && l.contains(&dev)),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains(".imgrun-tmp")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("root@h2: stat") && l.ends_with("vmlinuz")),
        "{log:#?}"
    );
}

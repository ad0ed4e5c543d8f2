//! `imgrun storage push` against real servers on loopback: `nbd-server`
//! (3.24) and `tgtd` (tgt 1.0.85), each started by the test as its own
//! daemon (own ports, own tgtd control port) and stopped by PID on every
//! exit path. The image is a real ext4 image made by the ext4 crate; the
//! server's backing file starts with junk in what will be the image's
//! holes, so the test sees that holes are really zeroed, and it must equal
//! the image byte for byte afterwards and pass `e2fsck -fn`. Missing
//! servers are installed with apt-get when the test runs as root;
//! otherwise the test is skipped, saying why.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guest_contract::storage::Storage;
use imgrun::cancel::Cancel;
use imgrun::storage::iscsi::{IscsiSession, IscsiTarget};
use imgrun::storage::push::{self, Holes, PushError, PushOptions, PushSummary};

mod servers;
use servers::{NbdServer, Tgtd, is_root};

const MIB: u64 = 1 << 20;
const IQN: &str = "iqn.2026-12.org.imgbuild:push-test";

// ---------------------------------------------------------------- helpers

/// A real ext4 image of `size` bytes, with files of several sizes: a few
/// MiB of data and large holes (more than 64 MiB between block groups).
fn ext4_image(dir: &Path, size: u64) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc/deep/er")).unwrap();
    let mut x: u32 = 12345;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    };
    std::fs::write(tree.join("etc/hostname"), b"push-test\n").unwrap();
    std::fs::write(tree.join("big.bin"), bytes(3 << 20)).unwrap();
    std::fs::write(tree.join("etc/deep/er/odd.bin"), bytes(12_345)).unwrap();
    for i in 0..40 {
        std::fs::write(tree.join(format!("etc/f{i}")), bytes(100 * i + 1)).unwrap();
    }
    let image = dir.join("rootfs.img");
    let mut fs = ext4fs_builder::FsBuilder::new(ext4fs_builder::Options {
        seed: Some(7),
        size: ext4fs_builder::SizeSpec::Fixed(size),
        label: Some("push-test".into()),
        ..ext4fs_builder::Options::default()
    });
    fs.add_tree(&tree, "/").unwrap();
    fs.write(&image).unwrap();
    image
}

/// A sparse file of `size` bytes with a junk block every 8 MiB (and at the
/// very end), which a push must overwrite or zero.
fn junk_backing(path: &Path, size: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    let junk = [0xa5u8; 4096];
    let mut at = 4096;
    while at + 4096 <= size {
        f.write_all_at(&junk, at).unwrap();
        at += 8 * MIB;
    }
    f.write_all_at(&junk, size - 4096).unwrap();
}

/// Asserts that `backing` starts with exactly the bytes of `image`.
fn assert_holds(backing: &Path, image: &Path) {
    let (mut a, mut b) = (File::open(image).unwrap(), File::open(backing).unwrap());
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut at = 0u64;
    loop {
        let n = a.read(&mut ba).unwrap();
        if n == 0 {
            return;
        }
        b.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            let i = (0..n).find(|&i| ba[i] != bb[i]).unwrap();
            panic!(
                "{} differs from the image at byte {}",
                backing.display(),
                at + i as u64
            );
        }
        at += n as u64;
    }
}

fn e2fsck(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("running e2fsck (e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}\n{}{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn options(holes: Holes) -> PushOptions {
    PushOptions {
        holes,
        timeout: Duration::from_secs(20),
        initiator: "iqn.2026-12.org.imgbuild:imgrun-push-test".into(),
    }
}

fn push(image: &Path, s: &Storage, o: &PushOptions) -> Result<PushSummary, PushError> {
    push::push(image, s, o, &Cancel::default(), &mut |e| {
        eprintln!("push: {e}")
    })
}

/// The image pushed and checked: bytes equal, e2fsck clean, the wire
/// carried about the data and not the holes.
fn check_pushed(s: &PushSummary, image: &Path, backing: &Path) {
    eprintln!("{}", s.line());
    assert_holds(backing, image);
    e2fsck(backing);
    let size = std::fs::metadata(image).unwrap().len();
    assert_eq!(s.image_bytes, size);
    assert!(
        s.data_bytes < size / 4,
        "the test image should be sparse: {s:?}"
    );
    assert_eq!(s.data_bytes + s.zeroed_bytes, size, "{s:?}");
    assert!(s.wire_bytes >= s.data_bytes, "{s:?}");
    assert!(
        s.wire_bytes < s.data_bytes + s.data_bytes / 50 + 64 * 1024,
        "more than the data went over the wire: {s:?}"
    );
}

/// A guest directory for the CLI: manifest (with `storage`), dummy boot
/// files, the image.
fn guest_dir(dir: &Path, image: &Path, storage: serde_json::Value) -> PathBuf {
    let g = dir.join("guest");
    std::fs::create_dir_all(&g).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_str(include_str!("data/manifest.json")).unwrap();
    m["storage"] = storage;
    std::fs::write(g.join("manifest.json"), m.to_string()).unwrap();
    for f in ["vmlinuz", "initrd.img"] {
        std::fs::write(g.join(f), b"x").unwrap();
    }
    std::fs::hard_link(image, g.join("rootfs.img")).unwrap();
    g
}

fn imgrun(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgrun"))
        .args(args)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------- nbd-server

#[test]
fn nbd_push_writes_data_and_zeroes_holes() {
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 160 * MIB);
    let backing = d.path().join("export.img");
    junk_backing(&backing, 192 * MIB);
    let Some(server) = NbdServer::start(&[("guest", &backing)]) else {
        return;
    };
    let s = push(&image, &server.storage("guest"), &options(Holes::Zero)).unwrap();
    assert_eq!(s.zero_method, "NBD_CMD_WRITE_ZEROES");
    assert!(
        s.destination.contains("export \"guest\""),
        "{}",
        s.destination
    );
    check_pushed(&s, &image, &backing);

    // The command line, with --json.
    junk_backing(&backing, 192 * MIB);
    let g = guest_dir(
        d.path(),
        &image,
        serde_json::json!({"kind": "nbd", "server": format!("127.0.0.1:{}", server.port), "export": "guest"}),
    );
    let out = imgrun(&["storage", "push", g.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["zero_method"], "NBD_CMD_WRITE_ZEROES");
    assert_eq!(doc["data_bytes"], s.data_bytes);
    assert!(
        stderr.contains("imgrun: wrote ")
            && stderr.contains(" ranges (NBD_CMD_WRITE_ZEROES) to nbd 127.0.0.1:"),
        "{stderr}"
    );
    assert_holds(&backing, &image);
}

#[test]
fn nbd_refusals_name_the_export_and_the_sizes() {
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 16 * MIB);
    let small = d.path().join("small.img");
    junk_backing(&small, 8 * MIB);
    let Some(server) = NbdServer::start(&[("small", &small)]) else {
        return;
    };
    let e = push(&image, &server.storage("small"), &options(Holes::Zero))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("export \"small\" holds 8 MiB (8388608 bytes), smaller than the image's 16 MiB (16777216 bytes)"),
        "{e}"
    );
    let e = push(&image, &server.storage("nosuch"), &options(Holes::Zero))
        .unwrap_err()
        .to_string();
    assert!(e.contains("export \"nosuch\" refused"), "{e}");
    assert!(
        e.contains(&format!("nbd server 127.0.0.1:{}", server.port)),
        "{e}"
    );
    assert!(e.contains("NBD_REP_ERR_UNKNOWN"), "{e}");
    // The server survives a refused client and still serves.
    let mut b = [0u8; 4096];
    File::open(&small)
        .unwrap()
        .read_exact_at(&mut b, 4096)
        .unwrap();
    assert_eq!(b, [0xa5; 4096], "nothing written to a too-small export");
}

#[test]
fn nbd_server_gone_or_silent_fails_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 16 * MIB);
    let backing = d.path().join("export.img");
    junk_backing(&backing, 16 * MIB);
    let Some(mut server) = NbdServer::start(&[("guest", &backing)]) else {
        return;
    };
    let storage = server.storage("guest");
    server.stop();
    let t = Instant::now();
    let e = push(&image, &storage, &options(Holes::Zero))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{}", server.port)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));

    // A server that accepts and never speaks: the timeout, not a hang.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let storage = Storage::Nbd {
        server: format!("127.0.0.1:{port}").parse().unwrap(),
        export: "guest".parse().unwrap(),
    };
    let o = PushOptions {
        timeout: Duration::from_secs(1),
        ..options(Holes::Zero)
    };
    let t = Instant::now();
    let e = push(&image, &storage, &o).unwrap_err().to_string();
    assert!(
        e.contains("no progress for 1 s while waiting for the server"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn nbd_push_interrupted_says_the_export_is_half_written() {
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 160 * MIB);
    let backing = d.path().join("export.img");
    junk_backing(&backing, 160 * MIB);
    let Some(server) = NbdServer::start(&[("guest", &backing)]) else {
        return;
    };
    // Ctrl-C as the first progress report arrives.
    let cancel = Cancel::default();
    let c = cancel.clone();
    let e = push::push(
        &image,
        &server.storage("guest"),
        &options(Holes::Zero),
        &cancel,
        &mut |e| {
            if matches!(e, push::PushEvent::Progress { .. }) {
                c.set();
            }
        },
    )
    .unwrap_err();
    assert!(matches!(e, PushError::Interrupted { .. }), "{e}");
    let e = e.to_string();
    assert!(e.starts_with("interrupted after "), "{e}");
    assert!(e.contains(" of 160 MiB: nbd 127.0.0.1:"), "{e}");
    assert!(
        e.ends_with("export \"guest\" is half-written: push again before using it"),
        "{e}"
    );

    // The command line: SIGINT while the server says nothing, exit 130.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let g = guest_dir(
        d.path(),
        &image,
        serde_json::json!({"kind": "nbd", "server": format!("127.0.0.1:{port}"), "export": "guest"}),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_imgrun"))
        .args(["storage", "push", g.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once imgrun is connected (its signal handlers are long installed), Ctrl-C.
    silent.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let _conn = loop {
        match silent.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("imgrun never connected: {e}"),
        }
    };
    std::thread::sleep(Duration::from_millis(200));
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted after 0 B of 160 MiB: nbd 127.0.0.1:{port} export \"guest\" was not written to")),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- a loop device

/// A loop device of ours on a file, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Option<Loop> {
        if !is_root() {
            eprintln!("SKIPPED: a loop device needs root");
            return None;
        }
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                Some(Loop(String::from_utf8_lossy(&o.stdout).trim().to_string()))
            }
            Ok(o) => {
                eprintln!(
                    "SKIPPED: losetup failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: no losetup: {e}");
                None
            }
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn phy_push_to_a_block_device_punches_its_holes() {
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 160 * MIB);
    let backing = d.path().join("disk.img");
    junk_backing(&backing, 192 * MIB);
    let Some(dev) = Loop::attach(&backing) else {
        return;
    };
    let storage = Storage::Phy {
        device: dev.0.clone(),
    };
    let s = push(&image, &storage, &options(Holes::Zero)).unwrap();
    eprintln!("{}", s.line());
    assert_eq!(s.destination, format!("device {}", dev.0));
    assert_eq!(s.zero_method, "hole punching");
    assert_eq!(s.wire_bytes, 0);
    assert_holds(Path::new(&dev.0), &image);
    e2fsck(Path::new(&dev.0));
}

// ---------------------------------------------------------------- tgtd

#[test]
fn iscsi_push_with_write_same() {
    let Some(tgt) = Tgtd::start() else { return };
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 160 * MIB);
    let backing = d.path().join("lun1.img");
    junk_backing(&backing, 192 * MIB);
    tgt.target(IQN, &backing, false, &[]);
    let s = push(&image, &tgt.storage(IQN, 1), &options(Holes::Zero)).unwrap();
    assert_eq!(s.zero_method, "WRITE SAME");
    assert_eq!(
        s.destination,
        format!("iscsi {IQN}@127.0.0.1:{} lun 1", tgt.port)
    );
    check_pushed(&s, &image, &backing);

    // The command line: the summary line on stderr.
    junk_backing(&backing, 192 * MIB);
    let g = guest_dir(
        d.path(),
        &image,
        serde_json::json!({"kind": "iscsi", "target": IQN, "portal": format!("127.0.0.1:{}", tgt.port), "lun": 1}),
    );
    let out = imgrun(&["storage", "push", g.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            " ranges (WRITE SAME) to iscsi {IQN}@127.0.0.1:{} lun 1 in ",
            tgt.port
        )),
        "{stderr}"
    );
    assert_holds(&backing, &image);
}

/// A thin LUN (UNMAP), and a target that wants Data-Out without immediate
/// data, unsolicited first bursts and small PDUs.
#[test]
fn iscsi_push_to_a_thin_lun_with_unsolicited_data() {
    let Some(tgt) = Tgtd::start() else { return };
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 160 * MIB);
    let backing = d.path().join("lun1.img");
    junk_backing(&backing, 192 * MIB);
    tgt.target(
        IQN,
        &backing,
        true,
        &[
            ("InitialR2T", "No"),
            ("ImmediateData", "No"),
            ("MaxRecvDataSegmentLength", "4096"),
            ("FirstBurstLength", "16384"),
            ("MaxBurstLength", "65536"),
        ],
    );
    let initiator = options(Holes::Zero).initiator;
    let t = IscsiTarget {
        host: "127.0.0.1",
        port: tgt.port,
        target: IQN,
        lun: 1,
        initiator: &initiator,
    };
    let mut session = IscsiSession::login(&t, Duration::from_secs(10), &Cancel::default()).unwrap();
    let n = session.negotiated();
    assert!(!n.initial_r2t && !n.immediate_data, "{n:?}");
    assert_eq!(
        (n.max_send_segment, n.first_burst, n.max_burst),
        (4096, 16384, 65536)
    );
    session.logout().unwrap();

    let s = push(&image, &tgt.storage(IQN, 1), &options(Holes::Zero)).unwrap();
    assert_eq!(s.zero_method, "WRITE SAME with UNMAP");
    check_pushed(&s, &image, &backing);
    // UNMAP punched the holes: the backing file holds about the data only.
    let allocated = std::fs::metadata(&backing).unwrap().blocks() * 512;
    assert!(
        allocated < s.data_bytes + 40 * MIB,
        "{allocated} bytes allocated for {} of data",
        s.data_bytes
    );
}

#[test]
fn iscsi_refusals_name_target_lun_and_sizes() {
    let Some(tgt) = Tgtd::start() else { return };
    let d = tempfile::tempdir().unwrap();
    let image = ext4_image(d.path(), 16 * MIB);
    let backing = d.path().join("lun1.img");
    junk_backing(&backing, 8 * MIB);
    tgt.target(IQN, &backing, false, &[]);
    let o = options(Holes::Zero);
    let e = push(&image, &tgt.storage(IQN, 1), &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "lun 1 holds 8 MiB (8388608 bytes), smaller than the image's 16 MiB (16777216 bytes)"
        ),
        "{e}"
    );
    let other = "iqn.2026-12.org.imgbuild:nosuch";
    let e = push(&image, &tgt.storage(other, 1), &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "iscsi {other}@127.0.0.1:{}: login refused: the portal has no target {other}",
            tgt.port
        )),
        "{e}"
    );
    let e = push(&image, &tgt.storage(IQN, 2), &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lun 2: READ CAPACITY(16) failed: CHECK CONDITION"),
        "{e}"
    );
    assert!(e.contains("(logical unit not supported)"), "{e}");
    let mut b = [0u8; 4096];
    File::open(&backing)
        .unwrap()
        .read_exact_at(&mut b, 4096)
        .unwrap();
    assert_eq!(b, [0xa5; 4096], "nothing written to a too-small LUN");
}

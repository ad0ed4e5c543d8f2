//! Closing the loop with the ext4 writer: the Linux kernel is the final judge.
//!
//! A random tree is written by `ext4fs-builder` into an image that the busybox
//! guest gets as a second, read-only disk (vdb). Over the serial console the
//! guest mounts it and prints the sha256 of every file; they must equal the
//! host's, and the kernel must log no ext4 error.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgrun::cancel::Cancel;
use imgrun::manifest::Manifest;
use imgrun::qemu::argv::{Accel, Console, VmConfig};
use imgrun::qemu::process::QemuProcess;

/// xorshift64*: a small deterministic generator, seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }
}

/// Writes a random tree: nested directories, a large directory, sizes around
/// block boundaries, a multi-megabyte file, long and unusual names.
fn random_tree(root: &Path, rng: &mut Rng) {
    let sizes = [0usize, 1, 100, 4095, 4096, 4097, 65_536, 131_073];
    let mut dirs = vec![root.to_path_buf()];
    for i in 0..12 {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let d = parent.join(format!("dir-{i}-{}", rng.below(1000)));
        std::fs::create_dir_all(&d).unwrap();
        dirs.push(d);
    }
    for i in 0..60 {
        let d = &dirs[rng.below(dirs.len() as u64) as usize];
        let len = if i < sizes.len() {
            sizes[i]
        } else {
            rng.below(300_000) as usize
        };
        let name = match i % 7 {
            0 => format!("long-{}-{}", "x".repeat(150 + rng.below(90) as usize), i),
            1 => format!("with space {i}.txt"),
            2 => format!("ünïcödé-{i}"),
            _ => format!("f{i}.bin"),
        };
        std::fs::write(d.join(name), rng.bytes(len)).unwrap();
    }
    std::fs::write(root.join("big.bin"), rng.bytes(3 * 1024 * 1024 + 123)).unwrap();
    let many = root.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..300 {
        std::fs::write(many.join(format!("entry-{i:04}")), format!("{i}\n")).unwrap();
    }
}

/// The sha256 of every regular file (by the host's `sha256sum`), keyed by
/// the hex of its path relative to `root` as `./a/b` (the guest prints names
/// in hex too, so no byte of a name is lost on the serial line).
fn host_sums(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let sum = Command::new("sha256sum")
                .stdin(std::fs::File::open(&p).unwrap())
                .output()
                .unwrap();
            let hash = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
            let rel = Path::new(".").join(p.strip_prefix(root).unwrap());
            out.insert(hex(rel.as_os_str().as_encoded_bytes()), hash);
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses the guest's `<sha256> <hex name>` lines.
fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (hash, name) = l.trim().split_once(' ')?;
            let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            (hash.len() == 64 && is_hex(hash) && is_hex(name))
                .then(|| (name.to_string(), hash.to_string()))
        })
        .collect()
}

/// The serial console over QEMU's socket, with everything read so far.
struct ConsoleConn {
    stream: UnixStream,
    seen: Arc<Mutex<String>>,
}

impl ConsoleConn {
    fn connect(path: &Path, vm: &mut QemuProcess) -> ConsoleConn {
        let start = Instant::now();
        let stream = loop {
            if let Ok(s) = UnixStream::connect(path) {
                break s;
            }
            if let Some(st) = vm.exited() {
                panic!("{}", vm.died(st));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no console socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let seen = Arc::new(Mutex::new(String::new()));
        let (mut r, s2) = (stream.try_clone().unwrap(), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ConsoleConn { stream, seen }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
    }

    /// Waits until `marker` appears after `from`; returns the text up to it.
    fn wait_for(
        &mut self,
        marker: &str,
        from: usize,
        timeout: Duration,
        vm: &mut QemuProcess,
        resend: Option<&str>,
    ) -> String {
        let start = Instant::now();
        let mut last_send = Instant::now();
        loop {
            {
                let s = self.seen.lock().unwrap();
                if let Some(pos) = s[from.min(s.len())..].find(marker) {
                    return s[from..from + pos].to_string();
                }
            }
            if let Some(st) = vm.exited() {
                panic!("{}", vm.died(st));
            }
            assert!(
                start.elapsed() < timeout,
                "no {marker:?} on the console within {timeout:?}; console:\n{}",
                self.seen.lock().unwrap()
            );
            if let Some(cmd) = resend {
                if last_send.elapsed() > Duration::from_secs(2) {
                    self.send(cmd);
                    last_send = Instant::now();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[test]
fn guest_kernel_reads_our_ext4_image() {
    let _g = common::serial();
    let Some(dir) = common::guest() else { return };
    let m = Manifest::load(&dir).unwrap();
    let seed = std::env::var("IMGRUN_EXT4_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("random tree seed {seed} (IMGRUN_EXT4_SEED={seed} repeats it)");
    let work: PathBuf = std::env::temp_dir().join(format!("imgrun-ext4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    random_tree(&tree, &mut Rng(seed));
    let want = host_sums(&tree);
    assert!(want.len() > 350, "{}", want.len());

    let image = work.join("data.img");
    let mut fs = ext4fs_builder::FsBuilder::new(ext4fs_builder::Options::default());
    fs.add_tree(&tree, "/").unwrap();
    fs.write(&image).unwrap();

    let console_sock = work.join("console.sock");
    let cfg = VmConfig {
        accel: Accel::Tcg,
        memory_mib: m.guest.memory_mib,
        vcpus: m.guest.vcpus,
        kernel: m.kernel.clone(),
        initrd: m.initrd.clone(),
        cmdline: m.qemu_cmdline(),
        rootfs: m.rootfs.clone(),
        extra_disks: vec![image],
        tap: None,
        mac: m.guest.mac.clone(),
        qmp_socket: work.join("qmp.sock"),
        console_log: work.join("console.log"),
        console: Console::SocketAndLog(console_sock.clone()),
        incoming: false,
    };
    let qemu = Path::new("qemu-system-x86_64");
    let mut vm = QemuProcess::spawn(qemu, "ext4-check", &cfg, None).unwrap();
    let _qmp = vm
        .connect_qmp(Duration::from_secs(20), &Cancel::default())
        .unwrap();
    let mut con = ConsoleConn::connect(&console_sock, &mut vm);

    // The shell answers once the guest is up; keep asking until it does.
    let ready = "echo READY-$((40+2))";
    con.send(ready);
    con.wait_for(
        "READY-42",
        0,
        Duration::from_secs(120),
        &mut vm,
        Some(ready),
    );
    let from = con.len();
    con.send(
        "dmesg -n 1; mkdir -p /dev/t && mount -t ext4 -o ro /dev/vdb /dev/t && cd /dev/t && \
         find . -type f | while read -r f; do \
         echo \"$(sha256sum < \"$f\" | cut -c1-64) $(printf %s \"$f\" | od -An -v -tx1 | tr -d ' \\n')\"; done; \
         cd /; echo SUMS-$((1+1))-END; dmesg | grep -i 'ext4-fs' ; echo LOG-$((2+1))-END",
    );
    let text = con.wait_for("LOG-3-END", from, Duration::from_secs(300), &mut vm, None);
    let (sums, log) = text.split_once("SUMS-2-END").expect("sums marker");
    let got = parse_sums(sums);
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, _)| k)
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && differ.is_empty() && got.len() == want.len(),
        "seed {seed}: {} files on the host, {} in the guest; missing {missing:?}; differing {differ:?}\nconsole:\n{text}",
        want.len(),
        got.len()
    );
    assert!(
        !log.to_ascii_lowercase().contains("error"),
        "seed {seed}: kernel log:\n{log}"
    );
    drop(vm);
    std::fs::remove_dir_all(&work).unwrap();
}

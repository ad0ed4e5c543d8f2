//! Test-owned servers on loopback for the storage tests (`storage_push.rs`,
//! `storage_attach.rs`): `tgtd` and `nbd-server`, each on ports of its own and
//! stopped by its own PID on drop, and the helpers they need.

#![allow(dead_code)] // each test binary uses its own part

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guest_contract::storage::Storage;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether `bin` is there, after `apt-get install pkg` if it was not and we
/// are root. Prints why not.
pub fn tool(bin: &str, pkg: &str) -> bool {
    static APT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    let have = || {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(bin).exists())
    };
    if have() {
        return true;
    }
    if !is_root() {
        eprintln!("SKIPPED: {bin} is missing and installing {pkg} needs root");
        return false;
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", pkg])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !have() {
        eprintln!("SKIPPED: {bin} is missing and `apt-get install {pkg}` failed");
        return false;
    }
    true
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 15 s) until something accepts connections on `port`;
/// `false` if it did not, or `exited()` said the server is gone.
pub fn wait_listening(port: u16, mut exited: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if exited() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Runs `cmd` to its end; panics with `what` and its stderr unless it succeeded.
fn succeeds(cmd: &mut Command, what: impl std::fmt::Display) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- nbd-server

/// An `nbd-server` of ours: daemonized with a PID file, killed by that PID
/// on drop.
pub struct NbdServer {
    dir: tempfile::TempDir,
    pub port: u16,
    pid: Option<i32>,
}

impl NbdServer {
    /// `None` (after saying why) if nbd-server is missing and cannot be installed.
    pub fn start(exports: &[(&str, &Path)]) -> Option<NbdServer> {
        if !tool("nbd-server", "nbd-server") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut conf = format!(
            "[generic]\n    listenaddr = 127.0.0.1\n    port = {port}\n    allowlist = true\n"
        );
        for (name, path) in exports {
            conf.push_str(&format!(
                "[{name}]\n    exportname = {}\n    trim = true\n    flush = true\n",
                path.display()
            ));
        }
        let conf_path = dir.path().join("nbd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let pidfile = dir.path().join("nbd.pid");
        let mut s = NbdServer {
            dir,
            port,
            pid: None,
        };
        succeeds(
            Command::new("nbd-server")
                .arg("-C")
                .arg(&conf_path)
                .arg("-p")
                .arg(&pidfile),
            "nbd-server",
        );
        let end = Instant::now() + Duration::from_secs(10);
        while s.pid.is_none() && Instant::now() < end {
            s.pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(s.pid.is_some(), "nbd-server wrote no PID file");
        assert!(
            wait_listening(port, || false),
            "nbd-server did not listen on {port}"
        );
        Some(s)
    }

    pub fn storage(&self, export: &str) -> Storage {
        Storage::Nbd {
            server: format!("127.0.0.1:{}", self.port).parse().unwrap(),
            export: export.parse().unwrap(),
        }
    }

    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let p = rustix::process::Pid::from_raw(pid).unwrap();
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            let end = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = &self.dir;
    }
}

// ---------------------------------------------------------------- tgtd

/// A `tgtd` of ours, on its own control port and iSCSI port, killed on drop.
pub struct Tgtd {
    child: Child,
    control: u16,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Tgtd {
    /// `None` (after saying why) if tgtd cannot run here.
    pub fn start() -> Option<Tgtd> {
        if !is_root() {
            eprintln!("SKIPPED: tgtd needs root");
            return None;
        }
        if !tool("tgtd", "tgt") {
            return None;
        }
        // A control port no other tgtd of this machine uses (its socket is
        // /var/run/tgtd/socket.<port>): one per test of this run, and the
        // next one if another tgtd holds it after all.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let base = 7000 + (std::process::id() % 20_000) as u16;
        for _ in 0..20 {
            let control = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let sock = format!("/var/run/tgtd/socket.{control}");
            if Path::new(&sock).exists() || Path::new(&format!("{sock}.lock")).exists() {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let log_path = dir.path().join("tgtd.log");
            let log = File::create(&log_path).unwrap();
            let child = Command::new("tgtd")
                .args(["-f", "-C", &control.to_string(), "--iscsi"])
                .arg(format!("portal=127.0.0.1:{port}"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut t = Tgtd {
                child,
                control,
                port,
                _dir: dir,
            };
            let mut why = None;
            let up = wait_listening(port, || {
                why = t.child.try_wait().ok().flatten().map(|s| {
                    format!(
                        "{s}: {}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    )
                });
                why.is_some()
            });
            match (up, why) {
                (true, _) => return Some(t),
                (false, Some(w)) if w.contains("another tgtd") => continue,
                (false, w) => panic!(
                    "tgtd did not listen on {port}: {}",
                    w.unwrap_or("15 s passed".into())
                ),
            }
        }
        panic!("no free tgtd control port from {base}");
    }

    pub fn adm(&self, args: &[&str]) {
        succeeds(
            Command::new("tgtadm")
                .args(["-C", &self.control.to_string(), "--lld", "iscsi"])
                .args(args),
            format_args!("tgtadm {args:?}"),
        );
    }

    /// Target 1 (`iqn`) with LUN 1 on `backing`; `params` are target keys
    /// (`InitialR2T=No`, …); `thin` turns thin provisioning on.
    pub fn target(&self, iqn: &str, backing: &Path, thin: bool, params: &[(&str, &str)]) {
        self.adm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", iqn]);
        self.adm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            backing.to_str().unwrap(),
        ]);
        if thin {
            self.adm(&[
                "--op",
                "update",
                "--mode",
                "logicalunit",
                "--tid",
                "1",
                "--lun",
                "1",
                "--params",
                "thin_provisioning=1",
            ]);
        }
        for (k, v) in params {
            self.adm(&[
                "--op", "update", "--mode", "target", "--tid", "1", "-n", k, "-v", v,
            ]);
        }
        self.adm(&[
            "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
        ]);
    }

    /// The portal on loopback.
    pub fn portal(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn storage(&self, target: &str, lun: u16) -> Storage {
        Storage::Iscsi {
            target: target.parse().unwrap(),
            portal: format!("127.0.0.1:{}", self.port).parse().unwrap(),
            lun,
        }
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        // tgtd -f ignores SIGTERM while it has targets: kill it, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its control socket and lock stay behind otherwise.
        for f in ["", ".lock"] {
            let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{}{f}", self.control));
        }
    }
}

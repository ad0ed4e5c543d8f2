//! Real QEMU, real kernel: `imgrun run` on the busybox guest that
//! `imgbuild recipe recipes/busybox.toml` builds (see `qemu_migrate.rs` for
//! how it is built, and `IMGRUN_TEST_IMAGE`). Needs root (the namespace);
//! skipped with a printed reason otherwise. One boot per test, one test at a
//! time.
//!
//! Each run gets its own `TMPDIR`, so that "nothing left behind" is that
//! directory being empty again, besides no QEMU and no namespace.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use imgrun::cancel::Cancel;
use imgrun::console::{ConsoleLink, ConsoleSession};

#[expect(dead_code, reason = "the variants are qemu_migrate.rs's")]
mod common;
use common::{guest, line_channel, serial, wait_line};

/// A running `imgrun run`: its stdout lines with their time of arrival,
/// its stderr lines.
struct Run {
    child: Child,
    start: Instant,
    out: Receiver<(Duration, String)>,
    err: Receiver<String>,
    seen_err: Vec<String>,
}

impl Run {
    fn start(tmp: &Path, args: &[&str]) -> Run {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgrun"))
            .arg("run")
            .args(["--accel", "tcg"])
            .args(args)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (otx, out) = channel();
        let o = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(o).lines().map_while(Result::ok) {
                if otx.send((start.elapsed(), l)).is_err() {
                    break;
                }
            }
        });
        let err = line_channel(child.stderr.take().unwrap());
        Run {
            child,
            start,
            out,
            err,
            seen_err: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_err(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = wait_line(&self.err, &mut self.seen_err, needle, timeout) {
            return l;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "no stderr line with {needle:?} within {timeout:?}:\n{}",
            self.seen_err.join("\n")
        );
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Exit code, stdout lines (with arrival times), stderr, wall time.
    fn finish(mut self) -> (i32, Vec<(Duration, String)>, String, Duration) {
        let status = self.child.wait().unwrap();
        let elapsed = self.start.elapsed();
        let out: Vec<_> = self.out.iter().collect();
        self.seen_err.extend(self.err.iter());
        (
            status.code().unwrap_or(-1),
            out,
            self.seen_err.join("\n"),
            elapsed,
        )
    }
}

fn value_after(line: &str, key: &str) -> String {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches([',', ';', ')'])
        .to_string()
}

fn process_gone(pid: i32) -> bool {
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if start.elapsed() > Duration::from_secs(5) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn namespace_gone(name: &str) -> bool {
    !Path::new("/run/netns").join(name).exists()
}

/// No QEMU, no namespace, nothing in the run's TMPDIR.
fn assert_nothing_left(stderr: &str, tmp: &Path) {
    let qemu = stderr
        .lines()
        .find(|l| l.contains("started pid="))
        .map(|l| value_after(l, "pid=").parse::<i32>().unwrap());
    if let Some(pid) = qemu {
        assert!(process_gone(pid), "QEMU {pid} left running:\n{stderr}");
    }
    if let Some(l) = stderr.lines().find(|l| l.contains("namespace ")) {
        let ns = value_after(l, "namespace ");
        assert!(namespace_gone(&ns), "namespace {ns} left behind");
    }
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{stderr}");
}

/// The exit code is the command's, stdout and stderr come out in order as
/// the command prints them (not at its end), and busybox ash reads back the
/// exact arguments, awkward ones included.
#[test]
fn exit_code_streaming_order_and_exact_arguments() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let script = "printf '<%s>' \"$@\"; echo; \
                  for i in 1 2 3; do echo out$i; sleep 1; echo err$i >&2; sleep 1; done; exit 7";
    let args = [
        "",
        "two words",
        "it's",
        "$(touch /tmp/pwned)",
        "a;b|c",
        "new\nline",
        "tab\there",
        "ünï",
    ];
    let mut argv = vec![dir.to_str().unwrap(), "--", "sh", "-c", script, "sh"];
    argv.extend(args);
    let run = Run::start(tmp.path(), &argv);
    let (code, out, err, _) = run.finish();
    assert_eq!(code, 7, "stdout {out:?}\nstderr:\n{err}");
    let text: Vec<&str> = out.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        text,
        [
            "<><two words><it's><$(touch /tmp/pwned)><a;b|c><new",
            "line><tab\there><ünï>",
            "out1",
            "err1",
            "out2",
            "err2",
            "out3",
            "err3"
        ],
        "stderr:\n{err}"
    );
    // Streamed: each line arrived about a second after the one before.
    for w in out[2..].windows(2) {
        let gap = w[1].0.saturating_sub(w[0].0);
        assert!(
            gap > Duration::from_millis(600),
            "{:?} came {gap:?} after {:?}: not streamed ({out:?})",
            w[1].1,
            w[0].1
        );
    }
    assert_nothing_left(&err, tmp.path());
}

/// After the command the guest powers itself off (the init's clean
/// shutdown), not QEMU quit after the grace; a `--log-dir` the user named
/// keeps its console log.
#[test]
fn the_guest_powers_off_by_itself_and_a_named_log_dir_stays() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let run = Run::start(
        tmp.path(),
        &[
            dir.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            "--",
            "true",
        ],
    );
    let (code, _, err, _) = run.finish();
    assert_eq!(code, 0, "{err}");
    let console = std::fs::read_to_string(logs.join("qemu-a-1.console.log")).unwrap();
    assert!(console.contains("PowerOff now"), "{console}");
    assert!(console.contains("reboot: Power down"), "{console}");
}

#[test]
fn timeout_stops_the_command_and_the_guest() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut run = Run::start(
        tmp.path(),
        &[
            dir.to_str().unwrap(),
            "--timeout",
            "2",
            "--",
            "sleep",
            "600",
        ],
    );
    run.wait_err("answered after", Duration::from_secs(120));
    let answered = run.start.elapsed();
    let (code, _, err, elapsed) = run.finish();
    assert_eq!(code, 124, "{err}");
    assert!(
        err.contains("did not finish within 2 s (--timeout)"),
        "{err}"
    );
    assert!(
        elapsed < answered + Duration::from_secs(15),
        "took {elapsed:?}, the guest answered after {answered:?}"
    );
    assert_nothing_left(&err, tmp.path());
}

#[test]
fn sigint_while_the_command_runs_cleans_up() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut run = Run::start(
        tmp.path(),
        &[
            dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo running; sleep 600",
        ],
    );
    run.wait_err("answered after", Duration::from_secs(120));
    let (_, first) = run.out.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, "running");
    run.signal(rustix::process::Signal::INT);
    let (code, _, err, _) = run.finish();
    assert_eq!(code, 130, "{err}");
    assert_nothing_left(&err, tmp.path());
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(Path::new("/run/netns").join(ns)).unwrap();
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// What the guest's status service says to command-like requests from its
/// network, over UDP and TCP: the replies.
fn send_commands(target: SocketAddr, payloads: &[&str]) -> Vec<String> {
    let mut replies = Vec::new();
    let udp = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for p in payloads {
        udp.send_to(p.as_bytes(), target).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = udp.recv_from(&mut buf) {
            replies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    for p in payloads {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        std::io::Write::write_all(&mut s, format!("{p}\n").as_bytes()).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(&mut s).read_line(&mut line);
        if !line.is_empty() {
            replies.push(line);
        }
    }
    replies
}

/// Ports the guest listens on, from `/proc/net/{tcp,udp}{,6}` text: TCP
/// sockets in state 0A (listen), every bound UDP socket.
fn listening_ports(text: &str, udp: bool) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, state) = (f.get(1)?, f.get(3)?);
            let (_, port) = local.split_once(':')?;
            (udp || *state == "0A").then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `--keep` leaves the guest running (QEMU outlives imgrun, the namespace
/// stays) and says how to reach it and stop it; what it says works. With
/// it up, the network side: command-like requests to the guest's status
/// port, over UDP and TCP from the guest's network, get the status
/// service's read-only answer (or nothing) and run nothing, which the
/// guest's console then shows; the only port open is the status service's.
#[test]
fn keep_then_commands_from_the_network_run_nothing_then_stop_as_told() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = Run::start(
        tmp.path(),
        &[
            dir.to_str().unwrap(),
            "--keep",
            "--",
            "sh",
            "-c",
            "echo kept",
        ],
    );
    let (code, out, err, _) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    let line = |key: &str| {
        err.lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no {key:?} line:\n{err}"))
            .to_string()
    };
    let pid: i32 = value_after(&line("keeps running: QEMU pid"), "QEMU pid ")
        .parse()
        .unwrap();
    let socket = value_after(&line("UNIX-CONNECT:"), "UNIX-CONNECT:");
    let ns = value_after(&line("network: the guest is"), "in namespace ");
    let stop = line("stop it: ");
    let stop = stop.split_once("stop it: ").unwrap().1.to_string();
    // Whatever happens below, the guest goes.
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("sh").arg("-c").arg(&self.0).status();
        }
    }
    let stopper = Stop(stop.clone());
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} is not running"
    );
    assert!(!namespace_gone(&ns), "{err}");
    assert!(Path::new(&socket).exists(), "{socket}");

    let target: SocketAddr = "10.99.0.2:5115".parse().unwrap();
    let payloads = [
        "run touch /tmp/pwned",
        "exec touch /tmp/pwned",
        "touch /tmp/pwned",
        "; touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "status; touch /tmp/pwned",
        "{\"cmd\": \"touch /tmp/pwned\", \"argv\": [\"touch\", \"/tmp/pwned\"]}",
        "dirty-check && touch /tmp/pwned",
    ];
    let replies = in_namespace(&ns, move || send_commands(target, &payloads));
    assert!(
        !replies.is_empty(),
        "the status service answered nothing at all"
    );
    for r in &replies {
        // The read-only status reply (any request is a status request) or
        // an error; never anything that ran.
        let v: serde_json::Value = serde_json::from_str(r.trim())
            .unwrap_or_else(|e| panic!("not the status service's JSON ({e}): {r:?}"));
        assert!(
            v.get("boot_id").is_some() || v.get("error").is_some(),
            "{r}"
        );
    }

    // The console (only the host has it) shows that nothing ran.
    let link = ConsoleLink::unix(
        Path::new(&socket),
        Duration::from_secs(5),
        &Cancel::default(),
    )
    .unwrap();
    let mut console = ConsoleSession::open(link);
    let c = Cancel::default();
    console.wait_shell(Duration::from_secs(30), &c).unwrap();
    let (code, text) = console
        .capture(
            "ls /tmp; test -e /tmp/pwned",
            "t",
            Duration::from_secs(30),
            4000,
            &c,
        )
        .unwrap();
    assert_eq!(
        code,
        1,
        "/tmp/pwned exists in the guest: {}",
        String::from_utf8_lossy(&text)
    );
    let mut ports = |proto: &str| {
        let (_, text) = console
            .capture(
                &format!("cat /proc/net/{proto} /proc/net/{proto}6 2>/dev/null"),
                "t",
                Duration::from_secs(30),
                100_000,
                &c,
            )
            .unwrap();
        let text = String::from_utf8_lossy(&text).into_owned();
        (listening_ports(&text, proto == "udp"), text)
    };
    let (tcp, text) = ports("tcp");
    assert_eq!(tcp, [5115], "{text}");
    let (udp, text) = ports("udp");
    assert_eq!(udp, [5115], "{text}");
    drop(console);

    // Stopped as imgrun said.
    drop(stopper);
    assert!(process_gone(pid), "QEMU {pid} still runs after `{stop}`");
    assert!(
        namespace_gone(&ns),
        "namespace {ns} still there after `{stop}`"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?} after `{stop}`");
    assert!(
        UnixStream::connect(&socket).is_err(),
        "{socket} still answers"
    );
}

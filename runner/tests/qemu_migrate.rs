//! Real QEMU, real kernel: `imgrun migrate-check` on the busybox guest that
//! `imgbuild recipe recipes/busybox.toml` builds.
//!
//! Needs root (CAP_NET_ADMIN for the namespace); skipped with a printed reason
//! otherwise. The guest is built once per test run by invoking the builder
//! (`cargo run -p imgbuild -- recipe recipes/busybox.toml --out <target>/imgrun-test-out`);
//! set `IMGRUN_TEST_IMAGE=<dir>` to use an already built output directory.
//! The tests run one at a time: two QEMUs under TCG already fill 2 cores.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{guest, guest_variant, line_channel, serial, wait_line};

fn imgrun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imgrun"))
}

/// Runs `imgrun migrate-check <dir> --json <args>`; returns (exit code, report).
fn migrate_check(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = imgrun()
        .arg("migrate-check")
        .arg(dir)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn check<'a>(leg: &'a Value, name: &str) -> &'a Value {
    leg["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {leg}"))
}

fn assert_all_passed(code: i32, report: &Value, stderr: &str) {
    // A run that stopped early has no migrations: the assertion below says why.
    let failed: Vec<String> = report["migrations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["checks"].as_array().into_iter().flatten())
        .filter(|c| c["passed"] != true)
        .map(|c| format!("{}: {}", c["name"], c["detail"]))
        .collect();
    assert!(
        code == 0 && report["passed"] == true && failed.is_empty(),
        "exit {code}, failed checks {failed:?}, error {}\nstderr:\n{stderr}",
        report["error"]
    );
}

const GUEST_CHECKS: [&str; 9] = [
    "migration-completed",
    "vm-states",
    "same-ip",
    "same-mac",
    "same-boot",
    "seq-continued",
    "tcp-survived",
    "probe-gap",
    "late-recheck",
];

#[test]
fn live_migration_passes_every_check() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let (code, r, stderr) = migrate_check(&dir, &[]);
    assert_all_passed(code, &r, &stderr);
    // The fast boot: the same kernel through its PVH entry, from qboot,
    // with the parameters that skip boot-time self-tests.
    assert!(
        r["hypervisor"]
            .as_str()
            .unwrap()
            .contains("; PVH entry, qboot)"),
        "{}",
        r["hypervisor"]
    );
    let console = std::fs::read_to_string(r["console_logs"][0].as_str().unwrap()).unwrap();
    assert!(console.contains("cryptomgr.notests"), "{console}");
    assert!(r["boot_ms"].as_u64().unwrap() > 0);
    let leg = &r["migrations"][0];
    // The ICMP echo beside the probe (the tests run as root).
    assert!(
        leg["probe"]["icmp"]["answered"].as_u64().unwrap() > 0,
        "{leg}"
    );
    for name in GUEST_CHECKS {
        assert_eq!(check(leg, name)["passed"], true, "{name}");
    }
    assert_eq!(leg["stats"]["status"], "completed");
    assert!(leg["stats"]["downtime_ms"].as_u64().is_some(), "{leg}");
    assert!(leg["stats"]["transferred_bytes"].as_u64().unwrap() > 0);
    assert!(leg["probe"]["answered"].as_u64().unwrap() > 0);
    assert_eq!(r["guest_location"], "destination");
    for log in r["console_logs"].as_array().unwrap() {
        assert!(Path::new(log.as_str().unwrap()).is_file(), "{log}");
    }
}

#[test]
fn back_and_forth_five_times() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let (code, r, stderr) = migrate_check(&dir, &["--repeat", "5", "--settle-ms", "1000"]);
    assert_all_passed(code, &r, &stderr);
    let legs = r["migrations"].as_array().unwrap();
    assert_eq!(legs.len(), 5);
    assert_eq!(legs[0]["from"], "qemu-a");
    assert_eq!(legs[1]["from"], "qemu-b");
    assert_eq!(legs[4]["to"], "qemu-b");
}

#[test]
fn dirty_memory_survives() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let (code, r, stderr) = migrate_check(&dir, &["--dirty", "64"]);
    assert_all_passed(code, &r, &stderr);
    let intact = check(&r["migrations"][0], "memory-intact");
    assert!(
        intact["detail"].as_str().unwrap().contains(" 0 bad"),
        "{intact}"
    );
}

#[test]
fn stop_first_baseline_has_no_gap_limit() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    // The previous defaults' boot (SeaBIOS, the bzImage, the manifest's
    // command line; the destination started late) is tested here too.
    let (code, r, stderr) = migrate_check(&dir, &["--stop-first", "--legacy-boot"]);
    assert_all_passed(code, &r, &stderr);
    assert!(
        r["hypervisor"]
            .as_str()
            .unwrap()
            .ends_with("(tcg; bzImage, SeaBIOS)")
            || r["hypervisor"]
                .as_str()
                .unwrap()
                .ends_with("(kvm; bzImage, SeaBIOS)"),
        "{}",
        r["hypervisor"]
    );
    let console = std::fs::read_to_string(r["console_logs"][0].as_str().unwrap()).unwrap();
    assert!(
        !console.contains("cryptomgr.notests"),
        "legacy boot got the fast parameters"
    );
    let leg = &r["migrations"][0];
    assert!(
        leg["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "probe-gap")
    );
    assert_eq!(r["options"]["stop_first"], true);
}

/// No socket left in a run's log directory (QEMU's QMP and console sockets).
fn assert_no_sockets(logs: &Path) {
    let socks: Vec<_> = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".sock") || n.ends_with(".qmp")
        })
        .collect();
    assert!(socks.is_empty(), "sockets left behind: {socks:?}");
}

/// `--workload` keeps running through three migrations: after each, the
/// same process (PID and start time), and `--workload-check` passes; its
/// output is in the report.
#[test]
fn a_workload_survives_three_migrations_as_the_same_process() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let logs = tempfile::tempdir().unwrap();
    let (code, r, stderr) = migrate_check(
        &dir,
        &[
            "--repeat",
            "3",
            "--settle-ms",
            "500",
            "--log-dir",
            logs.path().to_str().unwrap(),
            "--workload",
            "while :; do date >> /tmp/w; echo tick; sleep 0.2; done",
            "--workload-check",
            "test -s /tmp/w && wc -l </tmp/w",
        ],
    );
    assert_all_passed(code, &r, &stderr);
    let w = &r["workload"];
    let pid = w["pid"].as_u64().unwrap();
    assert!(w["start_time"].as_u64().is_some(), "{w}");
    assert_eq!(w["exit_status"], Value::Null, "{w}");
    assert!(w["output_tail"].as_str().unwrap().contains("tick\n"), "{w}");
    let legs = r["migrations"].as_array().unwrap();
    assert_eq!(legs.len(), 3);
    let mut lines_before = 0;
    for leg in legs {
        let running = check(leg, "workload-running");
        assert_eq!(running["passed"], true, "{running}");
        let d = running["detail"].as_str().unwrap();
        assert!(d.contains(&format!("pid {pid} still running")), "{d}");
        // The check's output: the file goes on growing.
        let lines: u64 = check(leg, "workload-check")["detail"]
            .as_str()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(lines > lines_before, "{leg}");
        lines_before = lines;
    }
    assert_no_sockets(logs.path());
}

/// A workload that exits non-zero and a failing `--workload-check` fail
/// the report (exit 1), each in its own check, and the report still says
/// where the guest is.
#[test]
fn a_failing_workload_and_check_fail_the_report() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let logs = tempfile::tempdir().unwrap();
    let (code, r, stderr) = migrate_check(
        &dir,
        &[
            "--settle-ms",
            "500",
            "--log-dir",
            logs.path().to_str().unwrap(),
            "--workload",
            "echo started; exit 3",
            "--workload-check",
            "echo checking; false",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(r["passed"], false);
    assert!(r["error"].is_null(), "{}", r["error"]);
    let leg = &r["migrations"][0];
    let exit = check(leg, "workload-exit");
    assert_eq!(exit["passed"], false, "{exit}");
    assert!(
        exit["detail"]
            .as_str()
            .unwrap()
            .ends_with("exited with status 3"),
        "{exit}"
    );
    let c = check(leg, "workload-check");
    assert_eq!(c["passed"], false, "{c}");
    assert_eq!(c["detail"], "exit 1; output: checking");
    // Every other check passed: the guest itself migrated fine.
    for name in GUEST_CHECKS {
        assert_eq!(check(leg, name)["passed"], true, "{name}");
    }
    assert_eq!(r["guest_location"], "destination");
    assert_eq!(leg["guest_location"], "destination");
    assert_eq!(r["workload"]["exit_status"], 3);
    assert_eq!(r["workload"]["output_tail"], "started\n");
    assert_no_sockets(logs.path());
}

/// docs/imgrun.md's worked example: recipes/busybox.toml with a page for
/// busybox httpd shipped by `[[rootfs.files]]`.
fn with_a_web_page(recipe: &str) -> String {
    format!(
        "{recipe}\n[[rootfs.files]]\ndest = \"/srv/www/index.html\"\ntext = \"<h1>hello from the guest</h1>\\n\"\n"
    )
}

/// The worked example: httpd serves the page through two migrations,
/// fetched in the guest (`--workload-check`) and from the runner's
/// network (`--host-check`) after each, each fetch a check.
#[test]
fn the_httpd_example_serves_through_the_migrations() {
    let _g = serial();
    let Some(dir) = guest_variant("httpd", with_a_web_page) else {
        return;
    };
    let (code, r, stderr) = migrate_check(
        &dir,
        &[
            "--repeat",
            "2",
            "--settle-ms",
            "500",
            "--workload",
            "httpd -f -p 8080 -h /srv/www",
            "--workload-check",
            "wget -q -O- http://127.0.0.1:8080/",
            "--host-check",
            "wget -q -O- http://$GUEST_IP:8080/ || curl -sf http://$GUEST_IP:8080/",
        ],
    );
    assert_all_passed(code, &r, &stderr);
    for leg in r["migrations"].as_array().unwrap() {
        for name in ["workload-running", "workload-check", "host-check"] {
            let c = check(leg, name);
            assert_eq!(c["passed"], true, "{c}");
        }
        for name in ["workload-check", "host-check"] {
            let d = check(leg, name)["detail"].as_str().unwrap().to_string();
            assert!(d.contains("<h1>hello from the guest</h1>"), "{name}: {d}");
        }
    }
}

/// imgrun with its stderr streamed line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = imgrun()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = line_channel(child.stderr.take().unwrap());
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = wait_line(&self.lines, &mut self.seen, needle, timeout) {
            return l;
        }
        let _ = self.child.kill();
        panic!(
            "no line with {needle:?} within {timeout:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    fn finish(mut self) -> (i32, String, Vec<String>) {
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), stdout, self.seen)
    }
}

fn value_after(line: &str, key: &str) -> String {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.split_whitespace().next().unwrap().to_string()
}

/// A started QEMU's PID from an `... started pid=N ...` line.
fn pid_of(line: &str) -> i32 {
    value_after(line, "pid=").parse().unwrap()
}

fn namespace_of(line: &str) -> String {
    value_after(line, "namespace ")
}

fn process_gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn namespace_gone(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn interrupted_run_cleans_up(sig: rustix::process::Signal, during_migration: bool) {
    let Some(dir) = guest() else { return };
    let dir = dir.to_str().unwrap();
    let mut args = vec!["migrate-check", dir];
    if during_migration {
        // A slow, dirtying migration that is still running when the signal comes.
        args.extend(["--dirty", "32", "--max-bandwidth", "2"]);
    }
    let mut run = Running::start(&args);
    let ns = namespace_of(&run.wait_for("namespace ", Duration::from_secs(60)));
    let mut pids = vec![pid_of(
        &run.wait_for("source qemu-a started", Duration::from_secs(60)),
    )];
    if during_migration {
        pids.push(pid_of(
            &run.wait_for("destination qemu-b started", Duration::from_secs(120)),
        ));
        run.wait_for("migration 1 started", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));
    }
    run.signal(sig);
    let (code, _, seen) = run.finish();
    assert_eq!(code, 130, "{}", seen.join("\n"));
    for pid in pids {
        assert!(
            process_gone(pid),
            "QEMU {pid} left running:\n{}",
            seen.join("\n")
        );
    }
    assert!(namespace_gone(&ns), "namespace {ns} left behind");
}

#[test]
fn sigint_while_booting_leaves_nothing_behind() {
    let _g = serial();
    interrupted_run_cleans_up(rustix::process::Signal::INT, false);
}

#[test]
fn sigterm_during_migration_leaves_nothing_behind() {
    let _g = serial();
    interrupted_run_cleans_up(rustix::process::Signal::TERM, true);
}

#[test]
fn killed_destination_leaves_guest_on_source() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let dir = dir.to_str().unwrap();
    let mut run = Running::start(&[
        "migrate-check",
        dir,
        "--json",
        "--dirty",
        "32",
        "--max-bandwidth",
        "2",
    ]);
    let ns = namespace_of(&run.wait_for("namespace ", Duration::from_secs(60)));
    let src = pid_of(&run.wait_for("source qemu-a started", Duration::from_secs(60)));
    let dst = pid_of(&run.wait_for("destination qemu-b started", Duration::from_secs(120)));
    run.wait_for("migration 1 started", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(800));
    let pid = rustix::process::Pid::from_raw(dst).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let (code, stdout, seen) = run.finish();
    assert_eq!(code, 1, "{}", seen.join("\n"));
    let r: Value = serde_json::from_str(&stdout).unwrap();
    let leg = &r["migrations"][0];
    assert_eq!(check(leg, "migration-completed")["passed"], false);
    let on_src = check(leg, "guest-on-source");
    assert_eq!(on_src["passed"], true, "{on_src}");
    assert_eq!(r["guest_location"], "source");
    // The resumed source's dirtied memory is intact.
    assert_eq!(check(leg, "memory-intact")["passed"], true, "{leg}");
    assert_eq!(r["passed"], false);
    assert!(process_gone(src) && process_gone(dst));
    assert!(namespace_gone(&ns));
}

#[test]
fn sigkilled_run_leaves_no_qemu_and_next_run_removes_its_namespace() {
    let _g = serial();
    let Some(dir) = guest() else { return };
    let dir = dir.to_str().unwrap();
    let mut run = Running::start(&["migrate-check", dir]);
    let ns = namespace_of(&run.wait_for("namespace ", Duration::from_secs(60)));
    let qemu = pid_of(&run.wait_for("source qemu-a started", Duration::from_secs(60)));
    // SIGKILL: no handler runs; QEMU dies with its parent (PR_SET_PDEATHSIG).
    run.signal(rustix::process::Signal::KILL);
    let (code, _, _) = run.finish();
    assert_eq!(code, -1);
    let start = Instant::now();
    while !process_gone(qemu) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        process_gone(qemu),
        "QEMU {qemu} outlived a SIGKILLed imgrun"
    );
    assert!(
        !namespace_gone(&ns),
        "namespace {ns} should still exist before the next run"
    );
    // The next run removes namespaces of dead imgrun processes.
    let mut next = Running::start(&["migrate-check", dir]);
    next.wait_for(&format!("removed namespace {ns}"), Duration::from_secs(60));
    next.signal(rustix::process::Signal::TERM);
    let (code, _, seen) = next.finish();
    assert_eq!(code, 130, "{}", seen.join("\n"));
    assert!(namespace_gone(&ns));
}

/// recipes/busybox.toml without its `gateway` line (optional in `[network]`).
fn without_gateway(recipe: &str) -> String {
    recipe
        .lines()
        .filter(|l| !l.trim_start().starts_with("gateway"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// recipes/busybox.toml without its `[network]` table.
fn without_network(recipe: &str) -> String {
    let mut out = String::new();
    let mut in_network = false;
    for l in recipe.lines() {
        if l.trim_start().starts_with('[') {
            in_network = l.trim() == "[network]";
        }
        if !in_network {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn manifest_of(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn guest_without_gateway_passes_every_check() {
    let _g = serial();
    let Some(dir) = guest_variant("nogw", without_gateway) else {
        return;
    };
    let m = manifest_of(&dir);
    assert!(m["guest"]["gateway"].is_null(), "{m}");
    assert_eq!(m["guest"]["address"], "10.99.0.2", "{m}");
    let logs = tempfile::tempdir().unwrap();
    let dir_arg = dir.to_str().unwrap();
    let log_arg = logs.path().to_str().unwrap();
    let mut run = Running::start(&["migrate-check", dir_arg, "--json", "--log-dir", log_arg]);
    let ns = namespace_of(&run.wait_for("namespace ", Duration::from_secs(60)));
    // The bridge holds the highest host address of 10.99.0.0/24 that is not the guest's.
    let addr = Command::new("ip")
        .args(["-n", &ns, "-4", "-o", "addr", "show", "dev", "br0"])
        .output()
        .unwrap();
    let addr = String::from_utf8_lossy(&addr.stdout).into_owned();
    let (code, stdout, seen) = run.finish();
    let stderr = seen.join("\n");
    assert!(
        addr.contains("inet 10.99.0.254/24"),
        "br0: {addr:?}\n{stderr}"
    );
    let r: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    assert_all_passed(code, &r, &stderr);
    assert!(namespace_gone(&ns), "namespace {ns} left behind");
    let leg = &r["migrations"][0];
    for name in GUEST_CHECKS {
        assert_eq!(check(leg, name)["passed"], true, "{name}");
    }
    assert_eq!(r["guest_location"], "destination");
}

/// Kills the child by PID if the test ends (or fails) while it still runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// PIDs of `pid`'s child processes (from every thread: QEMU's parent is
/// the thread that spawned it).
fn children_of(pid: u32) -> Vec<i32> {
    let mut kids = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
            kids.extend(c.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    kids
}

fn our_namespaces(pid: u32) -> Vec<String> {
    let prefix = format!("imgrun-{pid}-");
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn boot_without_network_starts_qemu_without_a_nic() {
    let _g = serial();
    let Some(dir) = guest_variant("nonet", without_network) else {
        return;
    };
    let m = manifest_of(&dir);
    assert!(
        m["guest"]["address"].is_null() && m["guest"]["mac"].is_null(),
        "{m}"
    );
    let logs = tempfile::tempdir().unwrap();
    let mut child = imgrun()
        .arg("boot")
        .arg(&dir)
        .arg("--log-dir")
        .arg(logs.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let err = child.stderr.take().unwrap();
    let mut run = KillOnDrop(child);
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let console = logs.path().join("qemu-1.console.log");
    let start = Instant::now();
    let mut qemu = None;
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(120) {
        assert!(
            matches!(run.0.try_wait(), Ok(None)),
            "imgrun exited early; stderr:\n{}",
            lines.try_iter().collect::<Vec<_>>().join("\n")
        );
        if qemu.is_none() {
            qemu = children_of(pid).first().copied();
        }
        text = std::fs::read_to_string(&console).unwrap_or_default();
        if text.contains("boot complete") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(
        text.contains("boot complete"),
        "no \"boot complete\" on the console within 120 s; stderr:\n{}\nconsole:\n{text}",
        seen.join("\n")
    );
    assert!(text.contains("no network configured"), "{text}");
    assert!(
        seen.iter().any(|l| l.contains("the guest has no network")),
        "{seen:?}"
    );
    let qemu = qemu.expect("no QEMU child of imgrun seen");
    let argv = std::fs::read(format!("/proc/{qemu}/cmdline")).unwrap();
    let argv: Vec<String> = argv
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(argv.iter().any(|a| a.contains("qemu-system")), "{argv:?}");
    assert!(argv.iter().any(|a| a == "-nodefaults"), "{argv:?}");
    assert!(
        !argv
            .iter()
            .any(|a| a == "-netdev" || a == "-nic" || a.contains("virtio-net")),
        "{argv:?}"
    );
    assert!(our_namespaces(pid).is_empty(), "{:?}", our_namespaces(pid));
    // SIGTERM ends QEMU and imgrun.
    let p = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::TERM).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = run.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "imgrun did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(process_gone(qemu), "QEMU {qemu} left running");
}

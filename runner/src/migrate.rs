//! `imgrun migrate-check`: QEMU→QEMU live migration in a private namespace,
//! with the backend-agnostic checks of [`crate::checks`].

use std::fmt;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cancel::{Cancel, Interrupted};
use crate::checks::{self, Check, Evidence, Snapshot, names};
use crate::manifest::Manifest;
use crate::netns::{NetNs, NetnsError, TAPS};
use crate::probe::Probe;
use crate::qemu::argv::{Accel, Console};
use crate::qemu::process::{ProcessError, tail};
use crate::qmp::{MigrateInfo, QmpError};
use crate::report::{GuestLocation, MigrationReport, MigrationStats, Report, RunOptions};
use crate::session::{Host, SessionError, Vm};
use crate::status::{GuestClient, GuestStatus, StatusError, TcpSession};

/// How the migration stream travels between the two QEMUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket in the log directory.
    Unix,
    /// TCP on the namespace's loopback.
    Tcp,
}

/// Options of `migrate-check`.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub qemu: PathBuf,
    /// `None`: probe KVM, else TCG.
    pub accel: Option<Accel>,
    pub repeat: u32,
    pub dirty_mb: Option<u32>,
    pub stop_first: bool,
    pub threshold: Duration,
    pub log_dir: Option<PathBuf>,
    pub transport: Transport,
    pub boot_timeout: Duration,
    pub migrate_timeout: Duration,
    /// How long after completion the destination is checked again.
    pub settle: Duration,
    /// Migration bandwidth cap in MiB/s (QEMU's default of 128 needlessly
    /// slows a migration between two processes on one host).
    pub max_bandwidth_mib: u64,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            qemu: "qemu-system-x86_64".into(),
            accel: None,
            repeat: 1,
            dirty_mb: None,
            stop_first: false,
            threshold: Duration::from_millis(1000),
            log_dir: None,
            transport: Transport::Unix,
            boot_timeout: Duration::from_secs(90),
            migrate_timeout: Duration::from_secs(120),
            settle: Duration::from_secs(3),
            max_bandwidth_mib: 1024,
        }
    }
}

/// Progress of a run, for the UI to render.
#[derive(Debug, Clone)]
pub enum Event {
    Host(String),
    Namespace(String),
    VmStarted {
        name: String,
        pid: u32,
        incoming: bool,
        console_log: PathBuf,
    },
    GuestUp {
        name: String,
        ms: u64,
    },
    MigrationStarted {
        index: u32,
        from: String,
        to: String,
    },
    MigrationEnded {
        index: u32,
        status: String,
        ms: u64,
    },
    Rechecking {
        index: u32,
        secs: f64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Host(h) => write!(f, "using {h}"),
            Event::Namespace(n) => write!(f, "namespace {n} ready"),
            Event::VmStarted {
                name,
                pid,
                incoming,
                console_log,
            } => write!(
                f,
                "{} {name} started pid={pid} console={}",
                if *incoming { "destination" } else { "source" },
                console_log.display()
            ),
            Event::GuestUp { name, ms } => write!(f, "guest on {name} answered after {ms} ms"),
            Event::MigrationStarted { index, from, to } => {
                write!(f, "migration {index} started {from} -> {to}")
            }
            Event::MigrationEnded { index, status, ms } => {
                write!(f, "migration {index} {status} after {ms} ms")
            }
            Event::Rechecking { index, secs } => {
                write!(
                    f,
                    "migration {index}: re-checking the destination in {secs:.1} s"
                )
            }
        }
    }
}

/// Errors that stop a run before any report can be made.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{name}: {source}")]
    Qmp { name: String, source: QmpError },
    #[error("socket in the namespace: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(
        "the guest on {name} did not answer its status service within {secs} s.\n--- console tail ({log}) ---\n{console}"
    )]
    GuestTimeout {
        name: String,
        secs: u64,
        log: String,
        console: String,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

fn qmp_err(vm: &Vm) -> impl Fn(QmpError) -> MigrateError + '_ {
    move |source| MigrateError::Qmp {
        name: vm.name().to_string(),
        source,
    }
}

/// How one migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Failed,
}

/// One run of the check.
struct Run<'a> {
    m: &'a Manifest,
    o: &'a MigrateOptions,
    host: Host,
    cancel: &'a Cancel,
    progress: &'a mut dyn FnMut(&Event),
    boots: [u32; 2],
    console_logs: Vec<PathBuf>,
    guest: GuestClient,
}

const SLOT_NAMES: [&str; 2] = ["qemu-a", "qemu-b"];

impl Run<'_> {
    fn start_vm(&mut self, ns: &NetNs, slot: usize, incoming: bool) -> Result<Vm, MigrateError> {
        self.boots[slot] += 1;
        let name = SLOT_NAMES[slot];
        let cfg = self.host.vm_config(
            self.m,
            name,
            self.boots[slot],
            TAPS[slot],
            Console::LogOnly,
            incoming,
        );
        self.console_logs.push(cfg.console_log.clone());
        let mut process =
            crate::qemu::process::QemuProcess::spawn(&self.host.qemu, name, &cfg, Some(ns.name()))?;
        (self.progress)(&Event::VmStarted {
            name: name.to_string(),
            pid: process.pid(),
            incoming,
            console_log: cfg.console_log.clone(),
        });
        let qmp = process.connect_qmp(Duration::from_secs(20), self.cancel)?;
        Ok(Vm { qmp, process, slot })
    }

    /// Waits for the freshly booted guest's status service, failing fast if QEMU dies.
    fn wait_guest(&mut self, vm: &mut Vm) -> Result<GuestStatus, MigrateError> {
        let start = Instant::now();
        loop {
            self.cancel.check()?;
            vm.process.ensure_alive()?;
            if let Ok(s) = self.guest.ask(Duration::from_millis(300)) {
                (self.progress)(&Event::GuestUp {
                    name: vm.name().to_string(),
                    ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
                return Ok(s);
            }
            if start.elapsed() > self.o.boot_timeout {
                return Err(MigrateError::GuestTimeout {
                    name: vm.name().to_string(),
                    secs: self.o.boot_timeout.as_secs(),
                    log: vm.process.console_log().display().to_string(),
                    console: tail(vm.process.console_log(), 3000),
                });
            }
        }
    }

    fn probe_socket(ns: &NetNs) -> Result<UdpSocket, MigrateError> {
        ns.run_in(|| UdpSocket::bind(("0.0.0.0", 0)))?
            .map_err(MigrateError::Socket)
    }

    fn uri(&self, index: u32) -> String {
        match self.o.transport {
            Transport::Unix => format!(
                "unix:{}",
                self.host
                    .log_dir
                    .join(format!("migrate-{index}.sock"))
                    .display()
            ),
            Transport::Tcp => format!("tcp:127.0.0.1:{}", 4440 + index % 100),
        }
    }

    /// Migrates the guest from `src` to `dst` and checks it. Errors are
    /// only returned when the run must stop (interrupted, QMP broken).
    fn migrate_once(
        &mut self,
        ns: &NetNs,
        index: u32,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        let uri = self.uri(index);
        // The destination announces the guest (so the bridge learns its new
        // port) right after it resumes, not after QEMU's default 50 ms.
        dst.qmp
            .migrate_set_parameters(json!({ "announce-initial": 1 }))
            .map_err(qmp_err(dst))?;
        dst.qmp.migrate_incoming(&uri).map_err(qmp_err(dst))?;
        // Auto-converge throttles a guest that dirties memory faster than the
        // stream carries it; without it such a migration never finishes.
        src.qmp
            .migrate_set_capabilities(&[("auto-converge", true)])
            .map_err(qmp_err(src))?;
        src.qmp
            .migrate_set_parameters(
                json!({ "max-bandwidth": self.o.max_bandwidth_mib.saturating_mul(1024 * 1024) }),
            )
            .map_err(qmp_err(src))?;
        let before = Snapshot::from(&self.guest.ask(Duration::from_secs(5))?);
        let probe = Probe::start(
            Self::probe_socket(ns)?,
            self.guest.target(),
            Duration::from_millis(10),
        )
        .map_err(MigrateError::Socket)?;
        if self.o.stop_first {
            src.qmp.stop().map_err(qmp_err(src))?;
        }
        (self.progress)(&Event::MigrationStarted {
            index,
            from: src.name().to_string(),
            to: dst.name().to_string(),
        });
        let started = Instant::now();
        let (info, failure) = match src.qmp.migrate(&uri) {
            Err(QmpError::Command { class, desc, .. }) => {
                (MigrateInfo::default(), Some(format!("{class}: {desc}")))
            }
            Err(e) => return Err(qmp_err(src)(e)),
            Ok(()) => self.poll_migration(src)?,
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = info.status.clone().unwrap_or_else(|| "failed".into());
        (self.progress)(&Event::MigrationEnded {
            index,
            status: status.clone(),
            ms: elapsed_ms,
        });
        let stats = MigrationStats {
            status: status.clone(),
            total_time_ms: info.total_time,
            downtime_ms: info.downtime,
            setup_time_ms: info.setup_time,
            transferred_bytes: info.ram.as_ref().map(|r| r.transferred),
        };
        let base = MigrationReport {
            index,
            from: src.name().to_string(),
            to: dst.name().to_string(),
            stats: Some(stats),
            probe: None,
            checks: Vec::new(),
            guest_location: GuestLocation::Lost,
            elapsed_ms,
            passed: false,
        };
        match failure {
            None => self.after_success(src, dst, tcp, probe, before, base, index),
            Some(why) => self.after_failure(src, dst, tcp, probe, before, base, &why),
        }
    }

    /// Polls `query-migrate` on the source until the migration ends.
    /// Returns the final info and, when it did not complete, why.
    fn poll_migration(
        &mut self,
        src: &mut Vm,
    ) -> Result<(MigrateInfo, Option<String>), MigrateError> {
        let started = Instant::now();
        let mut cancelled_for = None;
        loop {
            let info = src.qmp.query_migrate().map_err(qmp_err(src))?;
            match info.status.as_deref() {
                Some("completed") => return Ok((info, None)),
                Some("failed" | "cancelled") => {
                    let why = cancelled_for
                        .or_else(|| info.error_desc.clone())
                        .unwrap_or_else(|| info.status.clone().unwrap_or_default());
                    return Ok((info, Some(why)));
                }
                _ => {}
            }
            if cancelled_for.is_none() {
                if self.cancel.is_set() {
                    let _ = src.qmp.migrate_cancel();
                    return Err(Interrupted.into());
                }
                if started.elapsed() > self.o.migrate_timeout {
                    src.qmp.migrate_cancel().map_err(qmp_err(src))?;
                    cancelled_for = Some(format!(
                        "did not complete within {} s; cancelled",
                        self.o.migrate_timeout.as_secs()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one migration"
    )]
    fn after_success(
        &mut self,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
        probe: Probe,
        before: Snapshot,
        mut rep: MigrationReport,
        index: u32,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        // The source reports completion before the destination has loaded
        // the last state; wait for it to leave `inmigrate`.
        let loaded = Instant::now();
        while loaded.elapsed() < Duration::from_secs(10) {
            self.cancel.check()?;
            match dst.qmp.query_status() {
                Ok(s) if s.status == "inmigrate" => std::thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
        if self.o.stop_first {
            dst.qmp.cont().map_err(qmp_err(dst))?;
        }
        let after = self.guest.snapshot(Duration::from_secs(5));
        // The probe measures the migration, not the checks that follow.
        let probe = probe.finish();
        let tcp_after = tcp
            .status()
            .map(|s| Snapshot::from(&s))
            .map_err(|e| e.to_string());
        let dirty = self
            .o
            .dirty_mb
            .map(|_| tcp.dirty_check().map_err(|e| e.to_string()));
        let states = vm_states(src, dst);
        (self.progress)(&Event::Rechecking {
            index,
            secs: self.o.settle.as_secs_f64(),
        });
        self.cancel.sleep(self.o.settle)?;
        let late = match dst.process.exited() {
            Some(st) => Err(format!(
                "destination QEMU exited ({st}): {}",
                dst.process.died(st)
            )),
            None => match dst.qmp.query_status() {
                Ok(s) if s.status == "running" => self.guest.snapshot(Duration::from_secs(3)),
                Ok(s) => Err(format!("destination VM is {}", s.status)),
                Err(e) => Err(e.to_string()),
            },
        };
        let location = if late.is_ok() {
            GuestLocation::Destination
        } else {
            GuestLocation::Lost
        };
        let evidence = Evidence {
            address: self.m.guest.address,
            prefix: self.m.guest.prefix,
            mac: self.m.guest.mac.clone(),
            before,
            after,
            tcp_after,
            late: Some(late),
            probe: Some(probe.clone()),
            threshold: (!self.o.stop_first).then_some(self.o.threshold),
            dirty,
        };
        let mut checks = vec![
            Check::new(names::MIGRATION_COMPLETED, true, "query-migrate: completed"),
            states,
        ];
        checks.extend(checks::guest_checks(&evidence));
        rep.probe = Some(probe);
        rep.checks = checks;
        rep.guest_location = location;
        Ok((rep.seal(), Outcome::Completed))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one migration"
    )]
    fn after_failure(
        &mut self,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
        probe: Probe,
        before: Snapshot,
        mut rep: MigrationReport,
        why: &str,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        let dst_note = match dst.process.exited() {
            Some(st) => format!("; destination QEMU exited ({st})"),
            None => String::new(),
        };
        if self.o.stop_first {
            src.qmp.cont().map_err(qmp_err(src))?;
        }
        let src_state = src
            .qmp
            .query_status()
            .map(|s| s.status)
            .unwrap_or_else(|e| e.to_string());
        let on_src = self.guest.snapshot(Duration::from_secs(5));
        let probe = probe.finish();
        let (ok, detail) = match &on_src {
            Ok(s) if s.boot_id == before.boot_id && src_state == "running" => (
                true,
                format!(
                    "source VM {src_state}, guest answers, same boot {}",
                    s.boot_id
                ),
            ),
            Ok(s) => (
                false,
                format!(
                    "source VM {src_state}, guest answers with boot {} (before {})",
                    s.boot_id, before.boot_id
                ),
            ),
            Err(e) => (
                false,
                format!("source VM {src_state}; guest does not answer: {e}"),
            ),
        };
        rep.checks = vec![
            Check::new(
                names::MIGRATION_COMPLETED,
                false,
                format!("migration failed: {why}{dst_note}"),
            ),
            Check::new(names::GUEST_ON_SOURCE, ok, detail),
        ];
        if ok && self.o.dirty_mb.is_some() {
            // The source resumed: its memory must be intact too.
            rep.checks.push(checks::memory_intact(
                &tcp.dirty_check().map_err(|e| e.to_string()),
            ));
        }
        rep.probe = Some(probe);
        rep.guest_location = if ok {
            GuestLocation::Source
        } else {
            GuestLocation::Lost
        };
        Ok((rep.seal(), Outcome::Failed))
    }
}

/// QEMU-specific: destination `running`, source `postmigrate`.
fn vm_states(src: &mut Vm, dst: &mut Vm) -> Check {
    let s = |vm: &mut Vm| {
        vm.qmp
            .query_status()
            .map(|s| s.status)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    };
    let (d, sr) = (s(dst), s(src));
    Check::new(
        names::VM_STATES,
        d == "running" && sr == "postmigrate",
        format!("destination {d}, source {sr}"),
    )
}

/// Runs the whole check. Errors before the first migration (bad QEMU, no
/// capability, guest does not boot) are `Err`; failures during migrations
/// end up in the report. Everything started is torn down before returning.
pub fn migrate_check(
    m: &Manifest,
    o: &MigrateOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, MigrateError> {
    let t0 = Instant::now();
    let host = Host::prepare(&o.qemu, o.accel, o.log_dir.as_deref())?;
    progress(&Event::Host(format!(
        "{}, logs in {}",
        host.describe(),
        host.log_dir.display()
    )));
    for stale in crate::netns::remove_stale() {
        eprintln!("imgrun: removed namespace {stale} left by a killed run");
    }
    let ns = NetNs::create(m.guest.gateway, m.guest.prefix)?;
    progress(&Event::Namespace(ns.name().to_string()));
    let udp = Run::probe_socket(&ns)?;
    let target = SocketAddr::from((m.guest.address, m.guest.status_port));
    let mut run = Run {
        m,
        o,
        host,
        cancel,
        progress,
        boots: [0, 0],
        console_logs: Vec::new(),
        guest: GuestClient::new(udp, target, cancel.clone()),
    };
    let mut report = Report {
        backend: "qemu".into(),
        guest: m.name.clone(),
        image_dir: m.dir.clone(),
        hypervisor: run.host.describe(),
        options: RunOptions {
            repeat: o.repeat,
            dirty_mb: o.dirty_mb,
            stop_first: o.stop_first,
            threshold_ms: u64::try_from(o.threshold.as_millis()).unwrap_or(u64::MAX),
        },
        setup_ms: 0,
        total_ms: 0,
        migrations: Vec::new(),
        guest_location: GuestLocation::Source,
        console_logs: Vec::new(),
        error: None,
        passed: false,
    };

    let mut src = run.start_vm(&ns, 0, false)?;
    run.wait_guest(&mut src)?;
    report.setup_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    let stream = ns
        .run_in(move || TcpStream::connect_timeout(&target, Duration::from_secs(5)))?
        .map_err(|source| StatusError::Io {
            addr: target,
            source,
        })?;
    let mut tcp = TcpSession::new(stream, Duration::from_secs(5))?;
    if let Some(mb) = o.dirty_mb {
        tcp.dirty(mb)?;
    }

    for index in 1..=o.repeat {
        let slot = 1 - src.slot;
        let mut dst = match run.start_vm(&ns, slot, true) {
            Ok(d) => d,
            Err(MigrateError::Interrupted(i)) => return Err(i.into()),
            Err(e) => {
                report.error = Some(format!(
                    "starting the destination for migration {index}: {e}"
                ));
                break;
            }
        };
        let (leg, outcome) = match run.migrate_once(&ns, index, &mut src, &mut dst, &mut tcp) {
            Ok(r) => r,
            Err(MigrateError::Interrupted(i)) => return Err(i.into()),
            Err(e) => {
                report.error = Some(format!("migration {index}: {e}"));
                report.guest_location = GuestLocation::Lost;
                break;
            }
        };
        report.guest_location = leg.guest_location;
        let leg_passed = leg.passed;
        report.migrations.push(leg);
        match outcome {
            Outcome::Completed => {
                let old = std::mem::replace(&mut src, dst);
                old.shutdown();
                if !leg_passed {
                    break;
                }
            }
            Outcome::Failed => {
                dst.shutdown();
                break;
            }
        }
    }

    drop(tcp);
    src.shutdown();
    drop(ns);
    report.console_logs = run.console_logs;
    report.total_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    report.finish();
    Ok(report)
}

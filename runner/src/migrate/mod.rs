//! `imgrun migrate-check`: QEMU→QEMU live migration in a private namespace,
//! with the backend-agnostic checks of [`crate::checks`].

mod leg;
mod run;

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::leg::Outcome;
use self::run::Run;
use crate::cancel::{Cancel, Interrupted};
use crate::manifest::Manifest;
use crate::netns::{NetNs, NetnsError};
use crate::qemu::argv::Accel;
use crate::qemu::process::ProcessError;
use crate::qmp::QmpError;
use crate::report::{GuestLocation, Report, RunOptions};
use crate::session::{Host, SessionError};
use crate::status::{GuestClient, StatusError, TcpSession};

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
    /// QEMU's `downtime-limit`: the longest pause it plans for the final
    /// stop-and-copy (QEMU's default is 300 ms; ours 20 ms: an idle guest's
    /// QEMU downtime drops from ≈ 29 ms to ≈ 2.5 ms).
    pub downtime_limit: Duration,
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
            downtime_limit: Duration::from_millis(20),
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

//! `imgrun migrate-check`: the one driver of the migration check, over any
//! [`Backend`] (QEMU in [`crate::qemu::backend`], Xen in
//! [`crate::xen::backend`]). It starts the guest, waits for its status
//! service, opens the TCP connection that must survive, then migrates leg
//! by leg along the backend's route, gathers the evidence and runs the
//! named checks of [`crate::checks`] after each, and makes the report.

pub mod backend;
mod leg;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use self::backend::{Backend, BackendError, Leg, Outcome, Placement};
use crate::cancel::{Cancel, Interrupted};
use crate::checks::GapLimit;
use crate::guest::{GuestDir, GuestError};
use crate::host_check::HostCheck;
use crate::report::{GuestLocation, Report, RunOptions};
use crate::status::{GuestClient, StatusError, TcpSession};
use crate::workload::{Workload, WorkloadError, WorkloadSpec};

/// The options of a check, whatever the backend.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Migrations (two hosts: back and forth).
    pub repeat: u32,
    /// Dirty this many MiB of guest memory during migration and verify them after.
    pub dirty_mb: Option<u32>,
    /// Pause the guest before migrating (a non-live baseline; no gap limit).
    pub stop_first: bool,
    /// How the client-seen downtime (longest probe gap) is judged.
    pub threshold: GapLimit,
    /// How long the guest may take to answer after boot.
    pub boot_timeout: Duration,
    /// Give up (and cancel) a migration after this long.
    pub migrate_timeout: Duration,
    /// How long after a migration the destination is checked again.
    pub settle: Duration,
    /// `--workload`, `--workload-check`: run in the guest through the
    /// migrations and checked after each.
    pub workload: Option<WorkloadSpec>,
    /// `--host-check`: run on this machine after each migration.
    pub host_check: Option<HostCheck>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            repeat: 1,
            dirty_mb: None,
            stop_first: false,
            threshold: GapLimit::Max(Duration::from_millis(1000)),
            boot_timeout: Duration::from_secs(90),
            migrate_timeout: Duration::from_secs(120),
            settle: Duration::from_secs(3),
            workload: None,
            host_check: None,
        }
    }
}

/// Progress of a run, for the UI to render.
#[derive(Debug, Clone)]
pub enum Event {
    /// The hypervisor in use (a host, its version, where logs go).
    Host(String),
    /// Anything else worth a line (a file copied, a stale namespace removed).
    Note(String),
    /// The runner's private network namespace.
    Namespace(String),
    /// A QEMU process.
    VmStarted {
        name: String,
        pid: u32,
        incoming: bool,
        console_log: PathBuf,
    },
    /// The guest was created on a host.
    Created {
        host: String,
    },
    /// The guest already ran on the host and is used as it is.
    Adopted {
        host: String,
        domid: u32,
    },
    GuestUp {
        host: String,
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
            Event::Note(n) => f.write_str(n),
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
            Event::Created { host } => write!(f, "guest created on {host}"),
            Event::Adopted { host, domid } => write!(
                f,
                "guest already running on {host} (domid {domid}); using it"
            ),
            Event::GuestUp { host, ms } => write!(f, "guest on {host} answered after {ms} ms"),
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
pub enum CheckError {
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(
        "the guest on {host} did not answer its status service at {target} within {secs} s.\n--- console tail ({log}) ---\n{console}"
    )]
    GuestTimeout {
        host: String,
        target: SocketAddr,
        secs: u64,
        log: String,
        console: String,
    },
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl CheckError {
    /// True if the run stopped because of SIGINT/SIGTERM.
    pub fn interrupted(&self) -> bool {
        match self {
            CheckError::Interrupted(_) | CheckError::Backend(BackendError::Interrupted(_)) => true,
            CheckError::Workload(w) => w.interrupted(),
            _ => false,
        }
    }
}

/// The migrations of a route, as (from, to) positions in it: two hosts go
/// back and forth `repeat` times; a longer route is walked once.
pub fn legs(route: &[usize], repeat: u32) -> Vec<(usize, usize)> {
    match route {
        [a, b] => (0..repeat.max(1))
            .map(|i| if i % 2 == 0 { (*a, *b) } else { (*b, *a) })
            .collect(),
        _ => route.windows(2).map(|w| (w[0], w[1])).collect(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the whole check on `backend`. `started` is when the run began (the
/// backend's set-up counts towards `setup_ms`). Errors before the first
/// migration (guest does not boot) are `Err`; failures during migrations
/// end up in the report. The backend is dropped (and everything it started
/// torn down) by the caller.
pub fn migrate_check(
    backend: &mut dyn Backend,
    g: &GuestDir,
    o: &CheckOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Event),
    started: Instant,
) -> Result<Report, CheckError> {
    let target = g.status_target()?;
    let (net, _) = g.network()?;
    let route = backend.route();
    let legs = legs(&route, o.repeat);
    let first = route.first().copied().unwrap_or(0);
    let udp = backend.udp_socket().map_err(CheckError::Socket)?;
    let mut guest = GuestClient::new(udp, target, cancel.clone());

    let booting = Instant::now();
    backend.start(first, progress)?;
    wait_for_guest(backend, &mut guest, first, o, cancel, progress)?;
    let (boot_ms, setup_ms) = (ms(booting.elapsed()), ms(started.elapsed()));
    let stream = backend
        .connect(target, Duration::from_secs(5))
        .map_err(|source| StatusError::Io {
            addr: target,
            source,
        })?;
    let mut tcp = TcpSession::new(stream, Duration::from_secs(15))?;
    if let Some(mb) = o.dirty_mb {
        tcp.dirty(mb)?;
    }
    let mut workload = match &o.workload {
        Some(spec) => Some(Workload::start(backend, first, spec, cancel, progress)?),
        None => None,
    };
    // The host the guest is on (`None`: lost), for the workload's last look.
    let mut guest_host = Some(first);

    let mut report = Report {
        backend: backend.kind().into(),
        guest: g.name().to_owned(),
        image_dir: std::fs::canonicalize(&g.dir).unwrap_or_else(|_| g.dir.clone()),
        hypervisor: backend.describe(),
        hosts: backend.hosts(),
        options: RunOptions {
            repeat: u32::try_from(legs.len()).unwrap_or(u32::MAX),
            dirty_mb: o.dirty_mb,
            stop_first: o.stop_first,
            threshold_ms: o.threshold.max().map(ms),
        },
        setup_ms,
        boot_ms,
        total_ms: 0,
        migrations: Vec::new(),
        guest_location: GuestLocation::Source,
        console_logs: Vec::new(),
        workload: None,
        error: None,
        passed: false,
    };
    let mut leg_run = leg::LegRun {
        backend,
        guest: &mut guest,
        tcp: &mut tcp,
        net,
        target,
        o,
        cancel,
        progress,
        workload: workload.as_mut(),
    };
    for (i, (from, to)) in legs.iter().copied().enumerate() {
        let leg = Leg {
            index: u32::try_from(i + 1).unwrap_or(u32::MAX),
            from,
            to,
        };
        match leg_run.one(&leg) {
            Ok(r) => {
                report.guest_location = r.guest_location;
                guest_host = leg.host_of(r.guest_location);
                let passed = r.passed;
                report.migrations.push(r);
                if !passed {
                    break;
                }
            }
            Err(e) if e.interrupted() => return Err(e),
            Err(e) => {
                report.error = Some(format!("migration {}: {e}", leg.index));
                report.guest_location = leg_run
                    .backend
                    .locate(&leg)
                    .map_or(GuestLocation::Lost, |p| p.location);
                guest_host = leg.host_of(report.guest_location);
                break;
            }
        }
    }
    if let Some(w) = workload {
        report.workload = Some(w.finish(backend, guest_host, cancel)?);
    }
    report.console_logs = backend.console_logs();
    report.total_ms = ms(started.elapsed());
    report.finish();
    Ok(report)
}

/// Waits for the freshly started guest's status service, failing fast if
/// the backend sees it stop.
fn wait_for_guest(
    backend: &mut dyn Backend,
    guest: &mut GuestClient,
    host: usize,
    o: &CheckOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Event),
) -> Result<(), CheckError> {
    let start = Instant::now();
    loop {
        cancel.check()?;
        backend.ensure_running(host)?;
        // A request every 20 ms: the boot's end is seen within one.
        if guest
            .ask_often(Duration::from_millis(300), Duration::from_millis(20))
            .is_ok()
        {
            progress(&Event::GuestUp {
                host: backend.host_name(host),
                ms: ms(start.elapsed()),
            });
            return Ok(());
        }
        if start.elapsed() > o.boot_timeout {
            return Err(CheckError::GuestTimeout {
                host: backend.host_name(host),
                target: guest.target(),
                secs: o.boot_timeout.as_secs(),
                log: backend
                    .console_logs()
                    .last()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default(),
                console: backend.console_tail(host),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_follow_the_route() {
        assert_eq!(legs(&[0, 1], 1), vec![(0, 1)]);
        assert_eq!(legs(&[0, 1], 3), vec![(0, 1), (1, 0), (0, 1)]);
        assert_eq!(legs(&[0, 0, 1], 1), vec![(0, 0), (0, 1)]);
        assert_eq!(legs(&[0, 0], 2), vec![(0, 0), (0, 0)]);
    }
}

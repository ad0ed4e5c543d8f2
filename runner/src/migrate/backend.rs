//! What a hypervisor or engine must do for the migration check: the
//! [`Backend`] trait. The driver ([`super::migrate_check`]) owns everything
//! else — the guest client, the probe, the snapshots, the evidence, the
//! checks, the events and the report — so a new backend is this trait only.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use super::{CheckOptions, Event};
use crate::cancel::Interrupted;
use crate::console::ConsoleLink;
use crate::report::{GuestLocation, HostReport, MigrationStats};

/// An error of a backend: the run was interrupted, or something failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// SIGINT/SIGTERM while the backend waited.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// What went wrong, in the backend's own words.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl BackendError {
    /// Wraps a backend's error.
    pub fn failed(e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError::Failed(Box::new(e))
    }
}

/// What a backend does not do.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not supported by the {backend} backend")]
pub struct Unsupported {
    pub backend: &'static str,
    pub what: &'static str,
}

/// One migration: the `index`th (1-based), from host `from` to host `to`
/// (indices of [`Backend::host_name`]; equal for a single-host migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    pub index: u32,
    pub from: usize,
    pub to: usize,
}

impl Leg {
    /// The host the guest is on when it is at `location` after this leg
    /// (`None`: lost).
    pub fn host_of(&self, location: GuestLocation) -> Option<usize> {
        match location {
            GuestLocation::Destination => Some(self.to),
            GuestLocation::Source => Some(self.from),
            GuestLocation::Lost => None,
        }
    }
}

/// How a migration ended, as the hypervisor tells it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The hypervisor says it completed.
    pub completed: bool,
    /// What it said, for the `migration-completed` check.
    pub detail: String,
    /// Its own figures (status, times, bytes), where it gives them.
    pub stats: MigrationStats,
    /// Wall-clock time from issuing the migration to its end.
    pub elapsed_ms: u64,
}

/// Where the guest is, as the hypervisor tells it.
#[derive(Debug, Clone)]
pub struct Placement {
    pub location: GuestLocation,
    /// Every host's state is what a completed migration leaves (QEMU:
    /// destination `running`, source `postmigrate`): the `vm-states` check.
    pub states_ok: bool,
    /// The states, for the report.
    pub detail: String,
}

/// A hypervisor or engine that runs the guest on one or more hosts and
/// live-migrates it between them.
pub trait Backend {
    /// The report's `backend`: `qemu`, `xen`.
    fn kind(&self) -> &'static str;

    /// The hypervisor, for the report: `QEMU 10.0.2 (tcg)`, `Xen 4.17.5 (xl)`.
    fn describe(&self) -> String;

    /// The hosts in migration order, as indices for [`Backend::host_name`]:
    /// the guest starts on the first. Two hosts go back and forth.
    fn route(&self) -> Vec<usize>;

    /// A host's name in the report and in events: `qemu-a`, `root@h1`.
    fn host_name(&self, host: usize) -> String;

    /// Every host as its hypervisor describes itself, for the report
    /// (Xen: `xl info`); none by default.
    fn hosts(&self) -> Vec<HostReport> {
        Vec::new()
    }

    /// A UDP socket that reaches the guest's address; by default one of
    /// this process's network (QEMU: inside its private namespace).
    fn udp_socket(&self) -> std::io::Result<UdpSocket> {
        UdpSocket::bind(("0.0.0.0", 0))
    }

    /// A raw ICMP socket that reaches the guest's address, for the echo
    /// beside the probe; by default one of this process's network.
    fn icmp_socket(&self) -> std::io::Result<crate::icmp::IcmpSocket> {
        crate::icmp::IcmpSocket::open()
    }

    /// A TCP connection to the guest; by default from this process's network.
    fn connect(&self, target: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        TcpStream::connect_timeout(&target, timeout)
    }

    /// A process that runs `program` in the network the guest is reached
    /// from (`--host-check`); by default this process's network (QEMU: its
    /// private namespace, `ip netns exec`).
    fn host_command(&self, program: &str) -> std::process::Command {
        std::process::Command::new(program)
    }

    /// How long the guest may take to answer once a migration ended.
    fn answer_timeout(&self) -> Duration;

    /// Starts the guest on `host`, or adopts it if it already runs there.
    fn start(&mut self, host: usize, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError>;

    /// Fails (saying why) if the guest on `host` is known to have stopped;
    /// called while waiting for it to answer after [`Backend::start`].
    fn ensure_running(&mut self, host: usize) -> Result<(), BackendError>;

    /// Gets `leg`'s destination ready to receive the guest (QEMU: starts it
    /// waiting for the stream); called before the guest's snapshot and the
    /// probe, so that they cover the migration only.
    fn prepare(&mut self, leg: &Leg, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError>;

    /// Migrates the guest along `leg` and returns when the hypervisor says
    /// it completed (and the guest runs on the destination) or failed (and
    /// the guest was resumed on the source, where the hypervisor does so).
    fn migrate(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, BackendError>;

    /// Where the guest is now, after `leg`.
    fn locate(&mut self, leg: &Leg) -> Result<Placement, BackendError>;

    /// Ends `leg`: stops what is left behind (QEMU: the old source after a
    /// completed migration, the destination after a failed one).
    fn end_leg(&mut self, leg: &Leg, completed: bool);

    /// The last lines of the guest's console on `host`.
    fn console_tail(&self, host: usize) -> String;

    /// Every console log so far (paths, or `host:path` on remote hosts).
    fn console_logs(&self) -> Vec<PathBuf>;

    /// A link to the console of the guest on `host`, whose shell runs
    /// `imgrun run`'s command and the `--workload` (QEMU: its console
    /// socket; Xen: `xl console` on the host). Not every backend has one.
    fn console(&mut self, _host: usize) -> Result<ConsoleLink, BackendError> {
        Err(BackendError::failed(Unsupported {
            backend: self.kind(),
            what: "the guest's console (imgrun run, --workload)",
        }))
    }

    /// Waits up to `grace` for the guest on `host` to power itself off
    /// (it was told to), then ends it for good (QEMU: quit, then kill; Xen:
    /// `xl destroy`). For `imgrun run`.
    fn stop(&mut self, _host: usize, _grace: Duration) -> Result<(), BackendError> {
        Err(BackendError::failed(Unsupported {
            backend: self.kind(),
            what: "stopping the guest (imgrun run)",
        }))
    }

    /// Leaves the guest on `host` running when the backend is dropped
    /// (`imgrun run --keep`) and says, a line each, how to reach it and
    /// how to stop it.
    fn keep(&mut self, _host: usize) -> Result<Vec<String>, BackendError> {
        Err(BackendError::failed(Unsupported {
            backend: self.kind(),
            what: "keeping the guest (imgrun run --keep)",
        }))
    }
}

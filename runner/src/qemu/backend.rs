//! The QEMU backend of the migration check: two QEMUs (`qemu-a`,
//! `qemu-b`) on taps of a private network namespace, the same root image
//! (shared storage), and migration over QMP.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guest_contract::outputs::Output;
use serde_json::json;

use crate::cancel::{Cancel, Interrupted};
use crate::console::ConsoleLink;
use crate::guest::{GuestDir, GuestError};
use crate::migrate::{Backend, BackendError, CheckOptions, Event, Leg, Outcome, Placement};
use crate::netns::{self, NetNs, NetnsError, TAPS};
use crate::qemu::argv::{Accel, Console};
use crate::qemu::boot_plan::BootMode;
use crate::qemu::kept;
use crate::qemu::process::{ProcessError, QemuProcess, tail};
use crate::qemu::session::{Host, SessionError, Vm};
use crate::qmp::{MigrateInfo, QmpError};
use crate::report::{GuestLocation, MigrationStats};

/// How the migration stream travels between the two QEMUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket in the log directory.
    Unix,
    /// TCP on the namespace's loopback.
    Tcp,
}

/// What only the QEMU backend needs.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub qemu: PathBuf,
    /// `None`: KVM if it works here, else TCG.
    pub accel: Option<Accel>,
    /// Console logs and sockets (default: a new directory under $TMPDIR).
    pub log_dir: Option<PathBuf>,
    pub transport: Transport,
    /// Migration bandwidth cap in MiB/s (QEMU's default of 128 needlessly
    /// slows a migration between two processes on one host).
    pub max_bandwidth_mib: u64,
    /// QEMU's `downtime-limit`: the longest pause it plans for the final
    /// stop-and-copy (QEMU's default is 300 ms; ours 20 ms: an idle guest's
    /// QEMU downtime drops from ≈ 29 ms to ≈ 2.5 ms).
    pub downtime_limit: Duration,
    /// Fast (PVH entry, qboot, kernel parameters) or legacy boot.
    pub boot: BootMode,
    /// Where the unpacked PVH kernel is kept (none: the bzImage boots).
    pub cache_dir: Option<PathBuf>,
    /// Start each leg's destination (waiting for the stream) while the
    /// guest boots or settles on the source, not once it is needed.
    pub early_destination: bool,
    /// Every VM's console on a unix socket too (`<name>-<boot>.console.sock`
    /// in the log directory), for [`Backend::console`].
    pub console_sockets: bool,
    /// `imgrun run --keep`: QEMU may outlive imgrun and the namespace is a
    /// keepable one ([`NetNs::create_keepable`]), for [`Backend::keep`].
    pub keepable: bool,
    /// A guest without a network is refused (the migration check talks to
    /// it over the network); without this it boots without a NIC and a
    /// namespace (`imgrun run`).
    pub needs_network: bool,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            qemu: "qemu-system-x86_64".into(),
            accel: None,
            log_dir: None,
            transport: Transport::Unix,
            max_bandwidth_mib: 1024,
            downtime_limit: Duration::from_millis(20),
            boot: BootMode::Fast,
            cache_dir: None,
            early_destination: false,
            console_sockets: false,
            keepable: false,
            needs_network: true,
        }
    }
}

/// What can go wrong in the QEMU backend.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error("{name}: {source}")]
    Qmp { name: String, source: QmpError },
    #[error("starting the destination: {0}")]
    Destination(Box<QemuError>),
    #[error("no QEMU runs as {0}")]
    NotRunning(&'static str),
    #[error("{name} has no console socket (the backend was made without console sockets)")]
    NoConsole { name: &'static str },
    #[error(
        "the console socket {path} would be {len} bytes long, more than a unix socket's path may be ({max}): give a shorter --log-dir"
    )]
    SocketPath {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error(transparent)]
    Console(#[from] crate::console::LinkError),
}

impl From<QemuError> for BackendError {
    fn from(e: QemuError) -> BackendError {
        match e {
            QemuError::Process(ProcessError::Interrupted(i)) => BackendError::Interrupted(i),
            QemuError::Destination(d)
                if matches!(*d, QemuError::Process(ProcessError::Interrupted(_))) =>
            {
                BackendError::Interrupted(Interrupted)
            }
            QemuError::Console(crate::console::LinkError::Interrupted(i)) => {
                BackendError::Interrupted(i)
            }
            e => BackendError::failed(e),
        }
    }
}

/// The longest path a unix socket address holds (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

fn qmp_err(vm: &Vm) -> impl Fn(QmpError) -> QemuError + '_ {
    move |source| QemuError::Qmp {
        name: vm.name().to_string(),
        source,
    }
}

const SLOT_NAMES: [&str; 2] = ["qemu-a", "qemu-b"];

/// Two QEMU slots in one namespace; the guest moves between them.
#[derive(Debug)]
pub struct QemuBackend {
    g: GuestDir,
    cfg: QemuConfig,
    host: Host,
    cancel: Cancel,
    vms: [Option<Vm>; 2],
    boots: [u32; 2],
    console_logs: Vec<PathBuf>,
    /// Each slot's console socket, with [`QemuConfig::console_sockets`].
    console_sockets: [Option<PathBuf>; 2],
    /// Remove the log directory (if this run made it) when dropped.
    discard_logs: bool,
    /// Dropped after the VMs (see `Drop`); none for a guest without a
    /// network that need not have one.
    ns: Option<NetNs>,
}

impl QemuBackend {
    /// Checks the guest's network and the capability, checks QEMU, picks
    /// the accelerator, creates the namespace. An error leaves no empty log
    /// directory behind.
    pub fn new(
        g: &GuestDir,
        cfg: QemuConfig,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<QemuBackend, QemuError> {
        let net = if cfg.needs_network || g.manifest.guest.network.is_some() {
            Some(g.network()?)
        } else {
            None
        };
        if net.is_some() {
            // Before anything is created (log directory, KVM probe).
            netns::check_capability()?;
        }
        let host = Host::prepare(
            &cfg.qemu,
            cfg.accel,
            cfg.log_dir.as_deref(),
            &g.path(Output::Kernel)?,
            &g.path(Output::Initramfs)?,
            cfg.boot,
            cfg.cache_dir.as_deref(),
        )?;
        progress(&Event::Host(format!(
            "{}, logs in {}",
            host.describe_boot(),
            host.log_dir.display()
        )));
        for note in &host.boot.notes {
            progress(&Event::Note(note.clone()));
        }
        let ns = match net {
            Some((net, bridge)) => {
                for stale in netns::remove_stale() {
                    progress(&Event::Note(format!(
                        "removed namespace {stale} left by a killed run"
                    )));
                }
                let create = if cfg.keepable {
                    NetNs::create_keepable
                } else {
                    NetNs::create
                };
                let ns = create(bridge, net.address.prefix()).inspect_err(|_| {
                    host.discard_unused_log_dir();
                })?;
                progress(&Event::Namespace(ns.name().to_string()));
                Some(ns)
            }
            None => {
                progress(&Event::Note(
                    "the guest has no network: no NIC, no namespace".into(),
                ));
                None
            }
        };
        Ok(QemuBackend {
            g: g.clone(),
            cfg,
            host,
            cancel: cancel.clone(),
            vms: [None, None],
            boots: [0, 0],
            console_logs: Vec::new(),
            console_sockets: [None, None],
            discard_logs: false,
            ns,
        })
    }

    /// Removes the log directory when dropped, if this run made it
    /// (`imgrun run` after the command ran: nothing is left behind).
    pub fn discard_logs_on_drop(&mut self) {
        self.discard_logs = true;
    }

    /// Where the console logs (and sockets) go.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.host.log_dir
    }

    /// The namespace's name, if there is one.
    pub fn namespace(&self) -> Option<&str> {
        self.ns.as_ref().map(NetNs::name)
    }

    fn start_vm(
        &mut self,
        slot: usize,
        incoming: bool,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), QemuError> {
        self.boots[slot] += 1;
        let name = SLOT_NAMES[slot];
        let console = if self.cfg.console_sockets {
            let path = self
                .host
                .log_dir
                .join(format!("{name}-{}.console.sock", self.boots[slot]));
            let len = path.as_os_str().len();
            if len > SUN_PATH_MAX {
                return Err(QemuError::SocketPath {
                    path,
                    len,
                    max: SUN_PATH_MAX,
                });
            }
            self.console_sockets[slot] = Some(path.clone());
            Console::SocketAndLog(path)
        } else {
            Console::LogOnly
        };
        let cfg = self.host.vm_config(
            &self.g,
            name,
            self.boots[slot],
            self.ns.as_ref().map(|_| TAPS[slot]),
            console,
            incoming,
        )?;
        self.console_logs.push(cfg.console_log.clone());
        let mut process = QemuProcess::spawn_with(
            &self.host.qemu,
            name,
            &cfg,
            self.ns.as_ref().map(NetNs::name),
            self.cfg.keepable,
        )?;
        progress(&Event::VmStarted {
            name: name.to_string(),
            pid: process.pid(),
            incoming,
            console_log: cfg.console_log.clone(),
        });
        let qmp = process.connect_qmp(Duration::from_secs(20), &self.cancel)?;
        self.vms[slot] = Some(Vm { qmp, process, slot });
        Ok(())
    }

    fn uri(&self, index: u32) -> String {
        match self.cfg.transport {
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

    /// Both VMs of `leg`.
    fn pair(&mut self, leg: &Leg) -> Result<(&mut Vm, &mut Vm), QemuError> {
        let [a, b] = &mut self.vms;
        let (src, dst) = if leg.from == 0 { (a, b) } else { (b, a) };
        match (src.as_mut(), dst.as_mut()) {
            (Some(s), Some(d)) => Ok((s, d)),
            (None, _) => Err(QemuError::NotRunning(SLOT_NAMES[leg.from])),
            (_, None) => Err(QemuError::NotRunning(SLOT_NAMES[leg.to])),
        }
    }

    /// The destination listens, the source is set up to send.
    fn listen(&mut self, leg: &Leg) -> Result<(), QemuError> {
        let uri = self.uri(leg.index);
        let (bandwidth, downtime) = (self.cfg.max_bandwidth_mib, self.cfg.downtime_limit);
        let (src, dst) = self.pair(leg)?;
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
            .migrate_set_parameters(json!({
                "max-bandwidth": bandwidth.saturating_mul(1024 * 1024),
                "downtime-limit": u64::try_from(downtime.as_millis()).unwrap_or(u64::MAX),
            }))
            .map_err(qmp_err(src))?;
        Ok(())
    }

    fn migrate_leg(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, QemuError> {
        let uri = self.uri(leg.index);
        let cancel = self.cancel.clone();
        let (src, dst) = self.pair(leg)?;
        if o.stop_first {
            src.qmp.stop().map_err(qmp_err(src))?;
        }
        let started = Instant::now();
        let (info, failure) = match src.qmp.migrate(&uri) {
            Err(QmpError::Command { class, desc, .. }) => {
                (MigrateInfo::default(), Some(format!("{class}: {desc}")))
            }
            Err(e) => return Err(qmp_err(src)(e)),
            Ok(()) => poll_migration(src, o.migrate_timeout, &cancel)?,
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = info.status.clone().unwrap_or_else(|| "failed".into());
        let stats = MigrationStats {
            status,
            total_time_ms: info.total_time,
            downtime_ms: info.downtime,
            setup_time_ms: info.setup_time,
            transferred_bytes: info.ram.as_ref().map(|r| r.transferred),
        };
        let detail = match &failure {
            None => {
                // The source reports completion before the destination has
                // loaded the last state; wait for it to leave `inmigrate`.
                let loaded = Instant::now();
                while loaded.elapsed() < Duration::from_secs(10) {
                    cancel.check().map_err(ProcessError::Interrupted)?;
                    match dst.qmp.query_status() {
                        Ok(s) if s.status == "inmigrate" => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        _ => break,
                    }
                }
                if o.stop_first {
                    dst.qmp.cont().map_err(qmp_err(dst))?;
                }
                "query-migrate: completed".to_owned()
            }
            Some(why) => {
                let dst_note = match dst.process.exited() {
                    Some(st) => format!("; destination QEMU exited ({st})"),
                    None => String::new(),
                };
                if o.stop_first {
                    src.qmp.cont().map_err(qmp_err(src))?;
                }
                format!("migration failed: {why}{dst_note}")
            }
        };
        Ok(Outcome {
            completed: failure.is_none(),
            detail,
            stats,
            elapsed_ms,
        })
    }
}

/// Polls `query-migrate` on the source until the migration ends. Returns
/// the final info and, when it did not complete, why.
fn poll_migration(
    src: &mut Vm,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<(MigrateInfo, Option<String>), QemuError> {
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
            if cancel.is_set() {
                let _ = src.qmp.migrate_cancel();
                return Err(ProcessError::Interrupted(Interrupted).into());
            }
            if started.elapsed() > timeout {
                src.qmp.migrate_cancel().map_err(qmp_err(src))?;
                cancelled_for = Some(format!(
                    "did not complete within {} s; cancelled",
                    timeout.as_secs()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A VM's run state, or why it cannot be had.
fn state(vm: Option<&mut Vm>) -> String {
    match vm {
        None => "not running".into(),
        Some(vm) => match vm.process.exited() {
            Some(st) => format!("exited ({st}): {}", vm.process.died(st)),
            None => vm
                .qmp
                .query_status()
                .map(|s| s.status)
                .unwrap_or_else(|e| format!("unknown ({e})")),
        },
    }
}

impl Backend for QemuBackend {
    fn kind(&self) -> &'static str {
        "qemu"
    }

    fn describe(&self) -> String {
        self.host.describe_boot()
    }

    fn route(&self) -> Vec<usize> {
        vec![0, 1]
    }

    fn host_name(&self, host: usize) -> String {
        SLOT_NAMES
            .get(host)
            .copied()
            .unwrap_or("qemu-?")
            .to_string()
    }

    fn udp_socket(&self) -> std::io::Result<UdpSocket> {
        let Some(ns) = &self.ns else {
            return Err(std::io::Error::other("the guest has no network"));
        };
        ns.run_in(|| UdpSocket::bind(("0.0.0.0", 0)))
            .map_err(std::io::Error::other)?
    }

    fn icmp_socket(&self) -> std::io::Result<crate::icmp::IcmpSocket> {
        let Some(ns) = &self.ns else {
            return Err(std::io::Error::other("the guest has no network"));
        };
        ns.run_in(crate::icmp::IcmpSocket::open)
            .map_err(std::io::Error::other)?
    }

    fn connect(&self, target: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        let Some(ns) = &self.ns else {
            return Err(std::io::Error::other("the guest has no network"));
        };
        ns.run_in(move || TcpStream::connect_timeout(&target, timeout))
            .map_err(std::io::Error::other)?
    }

    fn host_command(&self, program: &str) -> std::process::Command {
        match &self.ns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns.name(), program]);
                c
            }
            None => std::process::Command::new(program),
        }
    }

    fn answer_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn start(&mut self, host: usize, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError> {
        self.start_vm(host, false, progress)?;
        if self.cfg.early_destination {
            // The first leg's destination starts while the guest boots: it
            // only waits for the stream, so the boot hardly notices.
            let to = (host + 1) % SLOT_NAMES.len();
            self.start_vm(to, true, progress)
                .map_err(|e| QemuError::Destination(Box::new(e)))?;
        }
        Ok(())
    }

    fn ensure_running(&mut self, host: usize) -> Result<(), BackendError> {
        match self.vms.get_mut(host).and_then(Option::as_mut) {
            Some(vm) => Ok(vm.process.ensure_alive().map_err(QemuError::from)?),
            None => Err(QemuError::NotRunning(SLOT_NAMES[host % 2]).into()),
        }
    }

    fn prepare(&mut self, leg: &Leg, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError> {
        match self.vms[leg.to].as_mut() {
            // Started early (see `start`): it must still be there.
            Some(vm) => vm
                .process
                .ensure_alive()
                .map_err(|e| QemuError::Destination(Box::new(e.into())))?,
            None => self
                .start_vm(leg.to, true, progress)
                .map_err(|e| QemuError::Destination(Box::new(e)))?,
        }
        Ok(self.listen(leg)?)
    }

    fn migrate(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, BackendError> {
        Ok(self.migrate_leg(leg, o)?)
    }

    fn locate(&mut self, leg: &Leg) -> Result<Placement, BackendError> {
        let [a, b] = &mut self.vms;
        let (src, dst) = if leg.from == 0 { (a, b) } else { (b, a) };
        let (d, s) = (state(dst.as_mut()), state(src.as_mut()));
        let location = if d == "running" {
            GuestLocation::Destination
        } else if s == "running" {
            GuestLocation::Source
        } else {
            GuestLocation::Lost
        };
        Ok(Placement {
            location,
            states_ok: d == "running" && s == "postmigrate",
            detail: format!("destination {d}, source {s}"),
        })
    }

    fn end_leg(&mut self, leg: &Leg, completed: bool) {
        let left_behind = if completed { leg.from } else { leg.to };
        if let Some(vm) = self.vms.get_mut(left_behind).and_then(Option::take) {
            vm.shutdown();
        }
    }

    fn console_tail(&self, host: usize) -> String {
        let name = self.host_name(host);
        self.console_logs
            .iter()
            .rev()
            .find(|l| {
                l.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}-")))
            })
            .map(|l| tail(l, 3000))
            .unwrap_or_default()
    }

    fn console_logs(&self) -> Vec<PathBuf> {
        self.console_logs.clone()
    }

    fn console(&mut self, host: usize) -> Result<ConsoleLink, BackendError> {
        let name = SLOT_NAMES[host % 2];
        let path = self.console_sockets[host % 2]
            .clone()
            .ok_or(QemuError::NoConsole { name })?;
        self.ensure_running(host)?;
        let link = ConsoleLink::unix(&path, Duration::from_secs(10), &self.cancel)
            .map_err(QemuError::from)?;
        Ok(link)
    }

    fn stop(&mut self, host: usize, grace: Duration) -> Result<(), BackendError> {
        if let Some(mut vm) = self.vms.get_mut(host).and_then(Option::take) {
            if vm.process.wait_exit(grace).is_some() {
                vm.process.kill();
            } else {
                vm.shutdown();
            }
        }
        Ok(())
    }

    fn keep(&mut self, host: usize) -> Result<Vec<String>, BackendError> {
        let name = SLOT_NAMES[host % 2];
        let Some(mut vm) = self.vms.get_mut(host).and_then(Option::take) else {
            return Err(QemuError::NotRunning(name).into());
        };
        if !self.cfg.keepable {
            self.vms[host] = Some(vm);
            return Err(BackendError::failed(crate::migrate::backend::Unsupported {
                backend: "qemu",
                what: "keeping a guest the backend was not made to keep",
            }));
        }
        vm.process.ensure_alive().map_err(QemuError::from)?;
        vm.process.detach();
        let network = match (self.ns.as_mut(), self.g.manifest.guest.network) {
            (Some(ns), Some(n)) => {
                ns.keep();
                Some((ns.name(), n.address.addr()))
            }
            _ => None,
        };
        let qmp = self.host.log_dir.join(format!("{name}.qmp"));
        let lines = kept::lines(&kept::Kept {
            guest: self.g.name(),
            pid: vm.process.pid(),
            log_dir: &self.host.log_dir,
            made_log_dir: self.host.created_log_dir(),
            console_socket: self.console_sockets[host % 2].as_deref(),
            console_log: vm.process.console_log(),
            qmp: &qmp,
            network,
        });
        // The log directory stays: it holds the sockets.
        self.discard_logs = false;
        Ok(lines)
    }
}

impl Drop for QemuBackend {
    /// Every QEMU is asked to quit (killed by PID if it does not) before
    /// the namespace goes.
    fn drop(&mut self) {
        for vm in self.vms.iter_mut().filter_map(Option::take) {
            vm.shutdown();
        }
        if self.discard_logs && self.host.created_log_dir() {
            let _ = std::fs::remove_dir_all(&self.host.log_dir);
        }
    }
}

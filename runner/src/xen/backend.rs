//! The Xen backend of the migration check: `xl create` the guest from its
//! xl.cfg on the route's first host (or adopt it there), `xl migrate` it
//! along the route, `xl list` to find it. Xen reports no downtime of its
//! own, so the client-seen probe gap is the downtime figure.
//!
//! Before anything is copied or created on any host, every host's `xl
//! info` is read and the [`preflight`] refuses a route with a host that
//! cannot run or live-migrate the guest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest_contract::outputs::Output;

use super::caps::HostCaps;
use super::host::{HostError, XenHost};
use super::preflight::{self, GuestType, PreflightError};
use super::xl;
use super::xlcfg::{XlCfg, XlCfgError};
use crate::cancel::{Cancel, Interrupted};
use crate::console::ConsoleLink;
use crate::guest::{GuestDir, GuestError};
use crate::host_files::{self, FileError, FileKind};
use crate::migrate::{self, Backend, BackendError, CheckOptions, Event, Leg, Outcome, Placement};
use crate::report::{GuestLocation, HostReport, MigrationStats};
use crate::storage::attach::StorageError;
use crate::storage::attach::hosts::AttachedHosts;

/// What only the Xen backend needs.
#[derive(Debug, Clone)]
pub struct XenConfig {
    /// Host specs (`localhost` or `[user@]host`): the guest is created (or,
    /// if already running there, adopted) on the first and migrated along
    /// the rest. Two entries go back and forth. The same host twice in a row
    /// is a single-host (localhost) migration.
    pub route: Vec<String>,
    /// `ssh -F` file; default: `$IMGRUN_SSH_CONFIG`, else the user's ssh config.
    pub ssh_config: Option<PathBuf>,
    /// Copy the xl.cfg, kernel and ramdisk to hosts that lack them (never the
    /// disk, which must be on storage both hosts share).
    pub copy_missing: bool,
    /// `imgrun run`: no migration, so the preflight refuses only a host
    /// that cannot run the guest, and a guest already running is refused
    /// (the run would power it off), not adopted.
    pub for_run: bool,
}

impl XenConfig {
    /// One migration SRC → DST (and back, with `--repeat`).
    pub fn new(src: &str, dst: &str) -> XenConfig {
        XenConfig {
            route: vec![src.to_string(), dst.to_string()],
            ssh_config: std::env::var_os("IMGRUN_SSH_CONFIG").map(PathBuf::from),
            copy_missing: true,
            for_run: false,
        }
    }

    /// `imgrun run` on `host`: the guest created there, no migration.
    pub fn run_on(host: &str) -> XenConfig {
        XenConfig {
            for_run: true,
            ..XenConfig::new(host, host)
        }
    }
}

/// What can go wrong in the Xen backend.
#[derive(Debug, thiserror::Error)]
pub enum XenError {
    #[error(transparent)]
    Cfg(#[from] XlCfgError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "{cfg}: the disk target {disk} is not the manifest's storage ({storage}), which is at {target}: rebuild the guest"
    )]
    StorageTarget {
        cfg: PathBuf,
        disk: String,
        storage: String,
        target: String,
    },
    #[error("{0}")]
    Route(String),
    #[error("on {host}: `{cmd}` failed: {tail}")]
    Command {
        host: String,
        cmd: String,
        tail: String,
    },
    #[error(transparent)]
    Files(#[from] FileError),
    #[error(
        "guest {name} is already running on {host}, not on the first host of the route; migrate or destroy it first"
    )]
    AlreadyRunning { name: String, host: String },
    #[error(
        "guest {name} is already running on {host} (domain {domid}): imgrun run starts, and at the end powers off, its own; stop that one first (xl shutdown {name})"
    )]
    RunningAlready {
        name: String,
        host: String,
        domid: u32,
    },
    #[error(transparent)]
    Console(#[from] crate::console::LinkError),
    #[error("socket: {0}")]
    Socket(std::io::Error),
}

impl From<XenError> for BackendError {
    fn from(e: XenError) -> BackendError {
        match e {
            XenError::Host(HostError::Interrupted { .. })
            | XenError::Files(FileError::Host(HostError::Interrupted { .. })) => {
                BackendError::Interrupted(Interrupted)
            }
            e => BackendError::failed(e),
        }
    }
}

const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Xen hosts reached by ssh (or this machine), the guest's xl.cfg, and
/// where the guest has been.
#[derive(Debug)]
pub struct XenBackend {
    cfg: XlCfg,
    guest_type: GuestType,
    o: XenConfig,
    cancel: Cancel,
    /// Unique hosts, and the route as indices into them.
    hosts: Vec<XenHost>,
    route: Vec<usize>,
    /// Per host: the guest there arrived by migration (its console log is
    /// `guest-NAME--incoming.log`).
    incoming: Vec<bool>,
    /// The guest's domain id on the leg's source before it started.
    before_domid: Option<u32>,
    /// Per host: its `xl info`.
    caps: Vec<HostCaps>,
    console_logs: Vec<PathBuf>,
    /// The guest's root disk, and the hosts attached to it (shared kinds).
    storage: AttachedHosts,
}

impl XenBackend {
    /// Reads the xl.cfg, checks the route, asks every host what its
    /// hypervisor can do (refusing a host that cannot run or live-migrate
    /// the guest) and puts the guest's files where the xl.cfg says.
    pub fn new(
        g: &GuestDir,
        o: XenConfig,
        check: &CheckOptions,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<XenBackend, XenError> {
        if o.route.len() < 2 {
            return Err(XenError::Route(
                "a migration needs a source and a destination host".into(),
            ));
        }
        if check.stop_first {
            return Err(XenError::Route(
                "--stop-first is a QEMU baseline; xl migrate has no paused migration".into(),
            ));
        }
        let path = std::fs::canonicalize(g.path(Output::XlConfig)?).map_err(|source| {
            XlCfgError::Read {
                path: g.dir.clone(),
                source,
            }
        })?;
        let cfg = XlCfg::load(&path)?;
        let guest_type = preflight::guest_type(&cfg)?;
        let disk = cfg
            .disks
            .first()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let storage = g.manifest.root_storage(&disk);
        if storage.is_shared() && disk != storage.xl_target() {
            return Err(XenError::StorageTarget {
                cfg: cfg.path.clone(),
                disk,
                storage: storage.to_string(),
                target: storage.xl_target(),
            });
        }
        let need = g.manifest.output(Output::RootImage).map_or(0, |o| o.size);
        let mut hosts: Vec<XenHost> = Vec::new();
        let mut route = Vec::new();
        for spec in &o.route {
            let h = XenHost::parse(spec, o.ssh_config.as_deref())?;
            let i = hosts.iter().position(|x| *x == h).unwrap_or_else(|| {
                hosts.push(h);
                hosts.len() - 1
            });
            route.push(i);
        }
        for (a, b) in migrate::legs(&route, check.repeat) {
            if a != b && hosts[b] == XenHost::Local {
                return Err(XenError::Route(format!(
                    "cannot migrate from {} to localhost: name the destination as the source reaches it",
                    hosts[a].name()
                )));
            }
        }
        let mut b = XenBackend {
            incoming: vec![false; hosts.len()],
            storage: AttachedHosts::new(storage, need, hosts.len()),
            cfg,
            guest_type,
            o,
            cancel: cancel.clone(),
            hosts,
            route,
            before_domid: None,
            caps: Vec::new(),
            console_logs: Vec::new(),
        };
        b.prepare_hosts(progress)?;
        Ok(b)
    }

    fn host(&self, i: usize) -> &XenHost {
        &self.hosts[i]
    }

    /// Runs `argv` on host `h`, failing on a non-zero exit.
    fn must(&self, h: usize, argv: &[String], timeout: Duration) -> Result<String, XenError> {
        let out = self.host(h).run(argv, timeout, &self.cancel)?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(XenError::Command {
                host: self.host(h).name().to_string(),
                cmd: super::shell::join(argv),
                tail: out.tail(2000),
            })
        }
    }

    /// `xl info` on every host and the preflight over all of them, then
    /// the artifacts at the xl.cfg's paths on each: a host that cannot
    /// take the guest is refused before anything is copied to any host.
    fn prepare_hosts(&mut self, progress: &mut dyn FnMut(&Event)) -> Result<(), XenError> {
        for h in 0..self.hosts.len() {
            self.cancel.check().map_err(|_| HostError::Interrupted {
                host: self.host(h).name().to_string(),
                cmd: "xl info".into(),
            })?;
            let caps = HostCaps::parse(&self.must(h, &xl::info(), CMD_TIMEOUT)?);
            progress(&Event::Host(format!(
                "xen host {}: {}",
                self.host(h).name(),
                caps.summary()
            )));
            self.caps.push(caps);
        }
        let notes = match preflight::check(&self.cfg.name, self.guest_type, &self.host_reports()) {
            // No migration: a host that can run the guest will do.
            Err(PreflightError::Refused(r))
                if self.o.for_run && r.refused.iter().all(|u| u.cannot == "live-migrate") =>
            {
                r.refused
                    .iter()
                    .map(|u| {
                        format!(
                            "preflight: host {} could not live-migrate {} guest {} ({}); it can run it",
                            u.host, self.guest_type, self.cfg.name, u.missing
                        )
                    })
                    .collect()
            }
            r => r?,
        };
        if notes.is_empty() {
            progress(&Event::Note(format!(
                "preflight: every host can run and live-migrate {} guest {}",
                self.guest_type, self.cfg.name
            )));
        }
        for note in notes {
            progress(&Event::Note(note));
        }
        // Shared storage: every host must reach it before anything is created.
        self.storage
            .attach_all(&self.hosts, &self.cancel, &mut |n| {
                progress(&Event::Note(n))
            })?;
        for h in 0..self.hosts.len() {
            self.ensure_files(h, progress)?;
        }
        Ok(())
    }

    /// Every host's name and `xl info`, in host order.
    fn host_reports(&self) -> Vec<HostReport> {
        self.hosts
            .iter()
            .zip(&self.caps)
            .enumerate()
            .map(|(i, (h, c))| HostReport {
                name: h.name().to_string(),
                caps: c.clone(),
                storage: self.storage.report(i),
            })
            .collect()
    }

    /// Every file of the xl.cfg must be on the host with the local size; the
    /// config, kernel and ramdisk are copied when missing (if allowed). A
    /// disk on shared storage is no file: it was attached, never copied.
    fn ensure_files(&mut self, h: usize, progress: &mut dyn FnMut(&Event)) -> Result<(), XenError> {
        let shared = self.storage.storage().is_shared();
        let files: Vec<PathBuf> = self
            .cfg
            .files()
            .into_iter()
            .filter(|f| !(shared && self.cfg.disks.iter().any(|d| d == f)))
            .map(Path::to_path_buf)
            .collect();
        for path in files {
            let kind = if self.cfg.disks.contains(&path) {
                FileKind::Disk
            } else {
                FileKind::Copyable
            };
            let copied =
                host_files::ensure(self.host(h), &path, kind, self.o.copy_missing, &self.cancel)?;
            if let Some(note) = copied {
                progress(&Event::Note(note));
            }
        }
        Ok(())
    }

    /// The live domain named like the guest on host `h`, if any.
    fn find(&self, h: usize) -> Result<Option<xl::Domain>, XenError> {
        let out = self
            .host(h)
            .run(&xl::list(&self.cfg.name), CMD_TIMEOUT, &self.cancel)?;
        // `xl list NAME` fails when there is no such domain.
        Ok(xl::parse_list(&out.stdout)
            .into_iter()
            .find(|d| d.name == self.cfg.name))
    }

    fn console_ref(&self, h: usize) -> PathBuf {
        PathBuf::from(format!(
            "{}:{}",
            self.host(h).name(),
            xl::console_log(&self.cfg.name, self.incoming[h])
        ))
    }

    fn start_guest(
        &mut self,
        first: usize,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), XenError> {
        for h in 0..self.hosts.len() {
            if h != first && self.find(h)?.is_some() {
                return Err(XenError::AlreadyRunning {
                    name: self.cfg.name.clone(),
                    host: self.host(h).name().to_string(),
                });
            }
        }
        if let Some(d) = self.find(first)? {
            if self.o.for_run {
                return Err(XenError::RunningAlready {
                    name: self.cfg.name.clone(),
                    host: self.host(first).name().to_string(),
                    domid: d.id,
                });
            }
            progress(&Event::Adopted {
                host: self.host(first).name().to_string(),
                domid: d.id,
            });
            // A guest that arrived by migration logs to guest-NAME--incoming.log.
            let log = xl::console_log(&self.cfg.name, true);
            self.incoming[first] = self
                .host(first)
                .run(&["test", "-e", log.as_str()], CMD_TIMEOUT, &self.cancel)
                .is_ok_and(|o| o.success);
        } else {
            let cfg = self.cfg.path.to_string_lossy().into_owned();
            self.must(first, &xl::create(&cfg), Duration::from_secs(180))?;
            progress(&Event::Created {
                host: self.host(first).name().to_string(),
            });
        }
        self.console_logs.push(self.console_ref(first));
        Ok(())
    }

    /// Notes the guest's domain on the source (a single-host migration
    /// shows as a new domain id).
    fn note_domain(&mut self, leg: &Leg) -> Result<(), XenError> {
        let before = self.find(leg.from)?.ok_or_else(|| {
            XenError::Route(format!(
                "guest {} is not running on {} before migration {}",
                self.cfg.name,
                self.host(leg.from).name(),
                leg.index
            ))
        })?;
        self.before_domid = Some(before.id);
        Ok(())
    }

    fn migrate_leg(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, XenError> {
        let (src, dst) = (leg.from, leg.to);
        let name = self.cfg.name.clone();
        let argv = if src == dst {
            xl::migrate_local(&name)
        } else {
            xl::migrate_to(&name, self.host(dst).name())
        };
        let started = Instant::now();
        let result = self.host(src).run(&argv, o.migrate_timeout, &self.cancel);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (ok, detail) = match &result {
            Ok(out) => {
                let said = format!("{}{}", out.stdout, out.stderr);
                (
                    out.success && said.contains("Migration successful"),
                    format!(
                        "`{}` exit {:?}: {}",
                        super::shell::join(&argv),
                        out.code,
                        out.tail(300).replace('\n', " | ")
                    ),
                )
            }
            Err(HostError::Interrupted { .. }) => {
                return Err(XenError::Host(HostError::Interrupted {
                    host: self.host(src).name().to_string(),
                    cmd: super::shell::join(&argv),
                }));
            }
            Err(e) => (false, e.to_string()),
        };
        Ok(Outcome {
            completed: ok,
            detail,
            stats: MigrationStats {
                status: if ok { "completed" } else { "failed" }.into(),
                total_time_ms: Some(elapsed_ms),
                downtime_ms: None,
                setup_time_ms: None,
                transferred_bytes: None,
            },
            elapsed_ms,
        })
    }

    /// Where the guest is after migrating `src` → `dst`.
    fn placement(&self, src: usize, dst: usize) -> Result<Placement, XenError> {
        let before = self.before_domid.unwrap_or(u32::MAX);
        let on_dst = self.find(dst)?;
        let (location, detail) = if src == dst {
            match on_dst {
                Some(d) if d.id != before && d.is_live() => (
                    GuestLocation::Destination,
                    format!("new domain {} ({}) replaced domain {before}", d.id, d.state),
                ),
                Some(d) if d.id == before => (
                    GuestLocation::Source,
                    format!("still domain {before} ({})", d.state),
                ),
                Some(d) => (
                    GuestLocation::Lost,
                    format!("domain {} is {}", d.id, d.state),
                ),
                None => (GuestLocation::Lost, "no domain of that name".into()),
            }
        } else {
            match (self.find(src)?, on_dst) {
                (None, Some(d)) if d.is_live() => (
                    GuestLocation::Destination,
                    format!(
                        "running on {} as domain {} ({}); gone from {}",
                        self.host(dst).name(),
                        d.id,
                        d.state,
                        self.host(src).name()
                    ),
                ),
                (Some(s), _) if s.is_live() => (
                    GuestLocation::Source,
                    format!(
                        "still on {} as domain {} ({})",
                        self.host(src).name(),
                        s.id,
                        s.state
                    ),
                ),
                (s, d) => (
                    GuestLocation::Lost,
                    format!(
                        "source: {}, destination: {}",
                        s.map_or("none".into(), |d| format!("domain {} {}", d.id, d.state)),
                        d.map_or("none".into(), |d| format!("domain {} {}", d.id, d.state))
                    ),
                ),
            }
        };
        Ok(Placement {
            states_ok: location == GuestLocation::Destination,
            location,
            detail,
        })
    }
}

impl Backend for XenBackend {
    fn kind(&self) -> &'static str {
        "xen"
    }

    fn describe(&self) -> String {
        let mut versions: Vec<String> = self.caps.iter().map(HostCaps::version_text).collect();
        versions.dedup();
        format!("Xen {} (xl)", versions.join(" / "))
    }

    fn hosts(&self) -> Vec<HostReport> {
        self.host_reports()
    }

    fn route(&self) -> Vec<usize> {
        self.route.clone()
    }

    fn host_name(&self, host: usize) -> String {
        self.hosts
            .get(host)
            .map_or_else(|| "?".to_string(), |h| h.name().to_string())
    }

    fn answer_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn start(&mut self, host: usize, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError> {
        Ok(self.start_guest(host, progress)?)
    }

    fn ensure_running(&mut self, _host: usize) -> Result<(), BackendError> {
        // Asking xl every 300 ms over ssh would cost more than it tells: a
        // guest that died shows as the boot timeout with its console tail.
        Ok(())
    }

    fn prepare(
        &mut self,
        leg: &Leg,
        _progress: &mut dyn FnMut(&Event),
    ) -> Result<(), BackendError> {
        Ok(self.note_domain(leg)?)
    }

    fn migrate(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, BackendError> {
        Ok(self.migrate_leg(leg, o)?)
    }

    fn locate(&mut self, leg: &Leg) -> Result<Placement, BackendError> {
        Ok(self.placement(leg.from, leg.to)?)
    }

    fn end_leg(&mut self, leg: &Leg, completed: bool) {
        if completed {
            self.incoming[leg.to] = true;
            self.console_logs.push(self.console_ref(leg.to));
        }
    }

    fn console_tail(&self, host: usize) -> String {
        let argv = xl::console_tail(&self.cfg.name, self.incoming[host], 40);
        match self.host(host).run(&argv, CMD_TIMEOUT, &self.cancel) {
            Ok(o) if o.success => o.stdout,
            Ok(o) => format!("(no console log: {})", o.tail(300)),
            Err(e) => format!("(cannot read the console log: {e})"),
        }
    }

    fn console_logs(&self) -> Vec<PathBuf> {
        self.console_logs.clone()
    }

    fn console(&mut self, host: usize) -> Result<ConsoleLink, BackendError> {
        let argv = xl::console(&self.cfg.name);
        let h = self.host(host);
        let what = format!("`{}` on {}", super::shell::join(&argv), h.name());
        Ok(ConsoleLink::process(h.command_tty(&argv), what).map_err(XenError::from)?)
    }

    fn stop(&mut self, host: usize, grace: Duration) -> Result<(), BackendError> {
        // Also after Ctrl-C: these commands have their own timeouts.
        let cancel = Cancel::default();
        let name = self.cfg.name.clone();
        let gone = |b: &Self| match b.host(host).run(&xl::list(&name), CMD_TIMEOUT, &cancel) {
            Ok(out) => !xl::parse_list(&out.stdout).iter().any(|d| d.name == name),
            Err(_) => false,
        };
        let start = Instant::now();
        while start.elapsed() < grace {
            if gone(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if gone(self) {
            return Ok(());
        }
        let out = self
            .host(host)
            .run(&xl::destroy(&name), CMD_TIMEOUT, &cancel)
            .map_err(XenError::from)?;
        if out.success || gone(self) {
            Ok(())
        } else {
            Err(XenError::Command {
                host: self.host(host).name().to_string(),
                cmd: super::shell::join(&xl::destroy(&name)),
                tail: out.tail(2000),
            }
            .into())
        }
    }

    fn keep(&mut self, host: usize) -> Result<Vec<String>, BackendError> {
        let (h, name) = (self.host(host).name(), &self.cfg.name);
        let (console, stop) = match self.host(host) {
            XenHost::Local => (format!("xl console {name}"), format!("xl shutdown {name}")),
            XenHost::Ssh { .. } => (
                format!("ssh -t {h} xl console {name}"),
                format!("ssh {h} xl shutdown {name}"),
            ),
        };
        Ok(vec![
            format!("the guest {name} keeps running on {h}"),
            format!("console (Ctrl-] leaves): {console}"),
            format!("stop it: {stop}"),
        ])
    }
}

impl Drop for XenBackend {
    /// Detaches the hosts this run attached to the shared storage, except
    /// those a domain of the guest is still on (it keeps its disk). Runs
    /// after Ctrl-C too: its commands have their own timeouts.
    fn drop(&mut self) {
        let cancel = Cancel::default();
        let (hosts, name) = (&self.hosts, &self.cfg.name);
        let mut guest_is_on = |h: usize| match hosts[h].run(&xl::list(name), CMD_TIMEOUT, &cancel) {
            Ok(out) => xl::parse_list(&out.stdout).iter().any(|d| d.name == *name),
            // Cannot tell: leave the disk where it is.
            Err(_) => true,
        };
        for e in self.storage.release(hosts, &cancel, &mut guest_is_on) {
            eprintln!("imgrun: warning: {e}");
        }
    }
}

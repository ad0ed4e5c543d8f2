//! The libvirt backend of the migration check: `virsh define` + `virsh
//! start` of the builder's domain XML on the first URI (or adopt the
//! running domain there), `virsh migrate --live --persistent
//! --undefinesource` along the route, `virsh domstate` to find the guest,
//! `virsh domjobinfo --completed` for libvirt's own figures. virsh runs
//! here with `-c URI`; libvirt reaches the hosts (ssh, TLS, TCP, unix).
//!
//! Hosts reached by ssh (or this machine) are also checked the way the
//! Xen backend checks them: the guest's files at the XML's paths, the
//! shared storage attached, and for Xen the preflight over `xl info`.
//! Afterwards the guest stays where libvirt left it (as with `xl`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use guest_contract::guest_type::GuestType;
use guest_contract::outputs::Output;

use super::domain::{DomainError, DomainFile};
use super::uri::{Driver, LibvirtUri, UriError};
use super::virsh;
use crate::cancel::{Cancel, Interrupted};
use crate::guest::{GuestDir, GuestError};
use crate::host_files::{self, FileError, FileKind};
use crate::migrate::{Backend, BackendError, CheckOptions, Event, Leg, Outcome, Placement};
use crate::qemu::accel::probe;
use crate::qemu::argv::Accel;
use crate::report::{GuestLocation, HostReport, MigrationStats};
use crate::storage::attach::StorageError;
use crate::storage::attach::hosts::AttachedHosts;
use crate::xen::caps::HostCaps;
use crate::xen::host::{HostError, Output as CmdOutput, XenHost};
use crate::xen::preflight::{self, PreflightError};
use crate::xen::xl;

/// The domain type of a QEMU-driver domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtType {
    /// `<domain type='kvm'>`, as the builder writes it.
    Kvm,
    /// `<domain type='qemu'>`: TCG, for hosts without KVM.
    Qemu,
}

/// What only the libvirt backend needs.
#[derive(Debug, Clone)]
pub struct LibvirtConfig {
    /// The hosts' URIs: the guest starts on the first.
    pub uris: Vec<String>,
    /// Migrate around the ring 1→2→…→n→1 (`--hosts`); else two URIs go
    /// back and forth (`--libvirt SRC DST`).
    pub ring: bool,
    /// Times round the ring (ring only; two URIs take `--repeat` as legs).
    pub rounds: u32,
    /// `ssh -F` file for the checks on ssh hosts (default
    /// `$IMGRUN_SSH_CONFIG`); libvirt's own ssh uses the user's config or
    /// the URI's `command=`/`keyfile=`.
    pub ssh_config: Option<PathBuf>,
    /// Copy the kernel and ramdisk to ssh hosts that lack them.
    pub copy_missing: bool,
    /// QEMU driver: the domain type; None: kvm where every host has KVM,
    /// else qemu (TCG), said in a note.
    pub virt_type: Option<VirtType>,
    /// `virsh migrate --p2p`: the source daemon connects to the
    /// destination URI itself (which must then be valid from the source).
    pub p2p: bool,
    /// The QEMU binary for the KVM probe on this machine (a local URI).
    pub qemu: PathBuf,
    /// Where the TCG variant of the XML is written (default: a new
    /// directory under $TMPDIR, removed at the end).
    pub work_dir: Option<PathBuf>,
}

impl LibvirtConfig {
    /// `--libvirt SRC DST`: one migration (and back, with `--repeat`).
    pub fn pair(src: &str, dst: &str) -> LibvirtConfig {
        LibvirtConfig {
            uris: vec![src.to_string(), dst.to_string()],
            ring: false,
            rounds: 1,
            ssh_config: std::env::var_os("IMGRUN_SSH_CONFIG").map(PathBuf::from),
            copy_missing: true,
            virt_type: None,
            p2p: false,
            qemu: PathBuf::from("qemu-system-x86_64"),
            work_dir: None,
        }
    }

    /// `--hosts U1,…,Un`: `rounds` times round the ring.
    pub fn ring(uris: Vec<String>, rounds: u32) -> LibvirtConfig {
        LibvirtConfig {
            ring: true,
            rounds,
            ..LibvirtConfig::pair("", "")
        }
        .with_uris(uris)
    }

    fn with_uris(mut self, uris: Vec<String>) -> LibvirtConfig {
        self.uris = uris;
        self
    }
}

/// What can go wrong in the libvirt backend.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Files(#[from] FileError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("{0}")]
    Route(String),
    #[error("`{cmd}` failed: {tail}")]
    Virsh { cmd: String, tail: String },
    #[error(
        "cannot reach libvirt at {uri} (is libvirtd running there, and may this user connect?): {tail}"
    )]
    Connect { uri: String, tail: String },
    #[error("cannot run virsh (install libvirt-clients: apt-get install libvirt-clients): {0}")]
    NoVirsh(std::io::Error),
    #[error(
        "domain {name} is already running on {uri}, not on the first host of the route; migrate or destroy it first (virsh -c {uri} destroy {name})"
    )]
    AlreadyRunning { name: String, uri: String },
    #[error(
        "domain {name} is defined but {state} on {uri}; imgrun defines it from {xml}: remove the old definition first (virsh -c {uri} undefine {name}) or start it yourself"
    )]
    Defined {
        name: String,
        state: String,
        uri: String,
        xml: PathBuf,
    },
    #[error("guest {name} stopped on {uri} (domain state: {state})")]
    Stopped {
        name: String,
        uri: String,
        state: String,
    },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn interrupted(e: &LibvirtError) -> bool {
    matches!(
        e,
        LibvirtError::Host(HostError::Interrupted { .. })
            | LibvirtError::Files(FileError::Host(HostError::Interrupted { .. }))
    )
}

impl From<LibvirtError> for BackendError {
    fn from(e: LibvirtError) -> BackendError {
        if interrupted(&e) {
            BackendError::Interrupted(Interrupted)
        } else {
            BackendError::failed(e)
        }
    }
}

const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// How often, at most, a booting guest's domain state is asked for.
const STATE_EVERY: Duration = Duration::from_secs(2);

/// libvirt daemons reached through their URIs, the guest's domain XML,
/// and where the guest has been.
#[derive(Debug)]
pub struct LibvirtBackend {
    uris: Vec<LibvirtUri>,
    /// Per host: where the runner runs its own checks (None: TCP/TLS).
    shells: Vec<Option<XenHost>>,
    route: Vec<usize>,
    domain: DomainFile,
    /// The XML given to `virsh define` (the builder's, or its TCG variant).
    define_file: PathBuf,
    /// A directory this run made (for the TCG variant), removed on drop.
    made_dir: Option<PathBuf>,
    p2p: bool,
    cancel: Cancel,
    /// Per host: `virsh version`'s daemon and hypervisor.
    versions: Vec<String>,
    /// Per host: the name its daemon gives itself (`virsh hostname`), for
    /// reports; the URI where it gives none.
    names: Vec<String>,
    /// Per Xen host reached by ssh: its `xl info`.
    caps: Vec<Option<HostCaps>>,
    storage: Option<AttachedHosts>,
    console_logs: Vec<PathBuf>,
    /// Per host: the guest arrived there by migration.
    incoming: Vec<bool>,
    last_state_check: Option<Instant>,
}

impl LibvirtBackend {
    /// Checks the URIs and the route, reads the domain XML for the URIs'
    /// driver, asks every daemon its version, and on hosts the runner
    /// reaches by ssh (or this machine) runs the Xen preflight, attaches
    /// the shared storage and puts the guest's files in place — all before
    /// anything is defined anywhere.
    pub fn new(
        g: &GuestDir,
        o: LibvirtConfig,
        check: &CheckOptions,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<LibvirtBackend, LibvirtError> {
        if check.stop_first {
            return Err(LibvirtError::Route(
                "--stop-first is a QEMU baseline of the QMP backend; virsh migrate --live has no paused start".into(),
            ));
        }
        let uris = o
            .uris
            .iter()
            .map(|u| LibvirtUri::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if uris.len() < 2 {
            return Err(LibvirtError::Route(if o.ring {
                "--hosts needs at least two URIs (URI1,URI2,…)".into()
            } else {
                "a migration needs a source and a destination URI".into()
            }));
        }
        let driver = uris[0].driver;
        if let Some(u) = uris.iter().find(|u| u.driver != driver) {
            return Err(LibvirtError::Route(format!(
                "{u} is a {} URI and {} a {driver} one: a domain migrates within one driver",
                u.driver, uris[0]
            )));
        }
        for (i, u) in uris.iter().enumerate() {
            if uris[..i].iter().any(|v| v.as_str() == u.as_str()) {
                return Err(LibvirtError::Route(format!(
                    "{u} is named twice: libvirt does not migrate a domain to the host it runs on"
                )));
            }
        }
        let route = if o.ring {
            let n = uris.len();
            let mut r: Vec<usize> = (0..o.rounds.max(1)).flat_map(|_| 0..n).collect();
            r.push(0);
            r
        } else {
            vec![0, 1]
        };
        let output = match driver {
            Driver::Xen => Output::XenDomainXml,
            Driver::Qemu => Output::QemuDomainXml,
        };
        let domain = DomainFile::load(&g.path(output)?)?;
        let shells: Vec<Option<XenHost>> = uris
            .iter()
            .map(|u| u.shell_host(o.ssh_config.as_deref()))
            .collect();
        let mut b = LibvirtBackend {
            incoming: vec![false; uris.len()],
            caps: vec![None; uris.len()],
            define_file: domain.path.clone(),
            made_dir: None,
            p2p: o.p2p,
            cancel: cancel.clone(),
            versions: Vec::new(),
            names: Vec::new(),
            storage: None,
            console_logs: Vec::new(),
            last_state_check: None,
            uris,
            shells,
            route,
            domain,
        };
        for h in 0..b.uris.len() {
            let out = b.run(&virsh::version(b.uri(h)), CMD_TIMEOUT)?;
            if !out.success {
                return Err(LibvirtError::Connect {
                    uri: b.uris[h].to_string(),
                    tail: out.tail(1000),
                });
            }
            let v = virsh::parse_version(&out.stdout);
            let name = b
                .virsh(&virsh::hostname(b.uri(h)))
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty() && !b.names.contains(n))
                .unwrap_or_else(|| b.uris[h].to_string());
            progress(&Event::Host(format!(
                "libvirt host {name} ({}): {v}",
                b.uris[h]
            )));
            b.versions.push(v);
            b.names.push(name);
        }
        b.choose_domain_type(g, &o, progress)?;
        b.check_hosts(g, &o, progress)?;
        Ok(b)
    }

    fn uri(&self, h: usize) -> &str {
        self.uris[h].as_str()
    }

    fn name(&self) -> &str {
        &self.domain.name
    }

    /// Runs virsh here; fails on a non-zero exit.
    fn virsh(&self, argv: &[String]) -> Result<String, LibvirtError> {
        let out = self.run(argv, CMD_TIMEOUT)?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(LibvirtError::Virsh {
                cmd: crate::xen::shell::join(argv),
                tail: out.tail(2000),
            })
        }
    }

    fn run(&self, argv: &[String], timeout: Duration) -> Result<CmdOutput, LibvirtError> {
        match XenHost::Local.run(argv, timeout, &self.cancel) {
            Err(HostError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(LibvirtError::NoVirsh(source))
            }
            r => Ok(r?),
        }
    }

    /// QEMU driver: `<domain type='kvm'>` where every host has KVM, else
    /// (or when asked) the TCG variant, written to a file of this run.
    fn choose_domain_type(
        &mut self,
        g: &GuestDir,
        o: &LibvirtConfig,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), LibvirtError> {
        if self.domain.domain_type != "kvm" {
            return Ok(());
        }
        let tcg = match o.virt_type {
            Some(VirtType::Kvm) => false,
            Some(VirtType::Qemu) => true,
            None => {
                let mut without = Vec::new();
                for h in 0..self.uris.len() {
                    let kvm = if self.shells[h] == Some(XenHost::Local) {
                        // This machine: /dev/kvm can be there and hang the
                        // guest's kernel (nested, no vmx/svm); the QEMU
                        // backend's probe boots the kernel to see.
                        let scratch = std::env::temp_dir();
                        let kernel = self.domain.kernel.clone().unwrap_or_default();
                        probe(&o.qemu, &kernel, &scratch) == Accel::Kvm
                    } else {
                        self.run(&virsh::kvm_capabilities(self.uri(h)), CMD_TIMEOUT)?
                            .success
                    };
                    if !kvm {
                        without.push(self.uris[h].to_string());
                    }
                }
                if !without.is_empty() {
                    progress(&Event::Note(format!(
                        "no KVM on {}: defining the domain as <domain type='qemu'> (TCG) on every host; --virt-type kvm to insist",
                        without.join(", ")
                    )));
                }
                !without.is_empty()
            }
        };
        if !tcg {
            return Ok(());
        }
        let text = self.domain.as_tcg()?;
        let dir = match &o.work_dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "imgrun-libvirt-{}-{}",
                    std::process::id(),
                    g.name()
                ));
                self.made_dir = Some(d.clone());
                d
            }
        };
        let file = dir.join(format!("{}.tcg.xml", g.name()));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&file, text))
            .map_err(|source| LibvirtError::Write {
                path: file.clone(),
                source,
            })?;
        progress(&Event::Note(format!(
            "domain XML for TCG: {} (the builder's {} with type='qemu')",
            file.display(),
            self.domain.path.display()
        )));
        self.define_file = file;
        Ok(())
    }

    /// On the hosts the runner reaches itself: the Xen preflight (`xl
    /// info`), the shared storage, the guest's files.
    fn check_hosts(
        &mut self,
        g: &GuestDir,
        o: &LibvirtConfig,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), LibvirtError> {
        let unreachable: Vec<String> = self
            .uris
            .iter()
            .zip(&self.shells)
            .filter(|(_, s)| s.is_none())
            .map(|(u, _)| u.to_string())
            .collect();
        if !unreachable.is_empty() {
            progress(&Event::Note(format!(
                "not checked on {} (no ssh to it: TCP/TLS, or an ssh port only the URI names): the guest's files, shared storage and Xen capabilities",
                unreachable.join(", ")
            )));
        }
        let hosts: Vec<(usize, XenHost)> = self
            .shells
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.clone().map(|s| (i, s)))
            .collect();
        if self.uris[0].driver == Driver::Xen {
            let ty = g.manifest.guest.xen_type.unwrap_or(GuestType::Pv);
            let mut reports = Vec::new();
            for (i, host) in &hosts {
                let out = host.run(&xl::info(), CMD_TIMEOUT, &self.cancel)?;
                if !out.success {
                    progress(&Event::Note(format!(
                        "{}: `xl info` failed, Xen capabilities not checked: {}",
                        host.name(),
                        out.tail(200)
                    )));
                    continue;
                }
                let caps = HostCaps::parse(&out.stdout);
                progress(&Event::Host(format!(
                    "xen host {}: {}",
                    host.name(),
                    caps.summary()
                )));
                reports.push(HostReport {
                    name: self.names[*i].clone(),
                    caps: caps.clone(),
                    storage: None,
                });
                self.caps[*i] = Some(caps);
            }
            for note in preflight::check(self.name(), ty, &reports)? {
                progress(&Event::Note(note));
            }
        }
        let disk = self
            .domain
            .disk_dev
            .clone()
            .or_else(|| {
                self.domain
                    .disk_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let storage = g.manifest.root_storage(&disk);
        if storage.is_shared() && hosts.len() == self.uris.len() {
            let need = g.manifest.output(Output::RootImage).map_or(0, |o| o.size);
            let all: Vec<XenHost> = hosts.iter().map(|(_, h)| h.clone()).collect();
            let mut attached = AttachedHosts::new(storage, need, all.len());
            let r = attached.attach_all(&all, &self.cancel, &mut |n| progress(&Event::Note(n)));
            self.storage = Some(attached);
            r?;
        }
        for (_, host) in &hosts {
            for f in self.domain.files() {
                let kind = if Some(f) == self.domain.disk_file.as_deref() {
                    FileKind::Disk
                } else {
                    FileKind::Copyable
                };
                if let Some(note) = host_files::ensure(host, f, kind, o.copy_missing, &self.cancel)?
                {
                    progress(&Event::Note(note));
                }
            }
        }
        Ok(())
    }

    /// The domain's state on host `h`, None if it has no such domain.
    fn state(&self, h: usize) -> Result<Option<String>, LibvirtError> {
        let out = self.run(&virsh::domstate(self.uri(h), self.name()), CMD_TIMEOUT)?;
        Ok(out.success.then(|| virsh::parse_state(&out.stdout)))
    }

    /// `host:path` of the guest's console log on host `h`, where known.
    fn console_ref(&self, h: usize) -> Option<PathBuf> {
        let host = self.shells[h].as_ref()?;
        Some(PathBuf::from(format!(
            "{}:{}",
            host.name(),
            self.console_path(h)
        )))
    }

    fn console_path(&self, h: usize) -> String {
        match self.uris[h].driver {
            Driver::Xen => xl::console_log(self.name(), false),
            // The builder's XML logs the serial console there.
            Driver::Qemu => guest_contract::libvirt_xml::qemu_console_log(self.name()),
        }
    }

    fn start_guest(
        &mut self,
        first: usize,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), LibvirtError> {
        for h in 0..self.uris.len() {
            if h != first && self.state(h)?.is_some_and(|s| virsh::is_live(&s)) {
                return Err(LibvirtError::AlreadyRunning {
                    name: self.name().to_string(),
                    uri: self.uris[h].to_string(),
                });
            }
        }
        match self.state(first)? {
            Some(s) if virsh::is_live(&s) => {
                let id = self
                    .virsh(&virsh::domid(self.uri(first), self.name()))
                    .ok()
                    .and_then(|o| o.trim().parse().ok())
                    .unwrap_or(0);
                progress(&Event::Adopted {
                    host: self.names[first].clone(),
                    domid: id,
                });
            }
            Some(state) => {
                return Err(LibvirtError::Defined {
                    name: self.name().to_string(),
                    state,
                    uri: self.uris[first].to_string(),
                    xml: self.define_file.clone(),
                });
            }
            None => {
                let file = self.define_file.to_string_lossy().into_owned();
                self.virsh(&virsh::define(self.uri(first), &file))?;
                if let Err(e) = self.virsh(&virsh::start(self.uri(first), self.name())) {
                    // Leave nothing defined that never ran.
                    let _ = self.run(&virsh::undefine(self.uri(first), self.name()), CMD_TIMEOUT);
                    return Err(e);
                }
                progress(&Event::Created {
                    host: self.names[first].clone(),
                });
            }
        }
        if let Some(c) = self.console_ref(first) {
            self.console_logs.push(c);
        }
        Ok(())
    }

    fn migrate_leg(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, LibvirtError> {
        let (src, dst) = (self.uri(leg.from).to_string(), self.uri(leg.to).to_string());
        let name = self.name().to_string();
        let argv = virsh::migrate(&src, &name, &dst, self.p2p);
        let started = Instant::now();
        let result = self.run(&argv, o.migrate_timeout);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let cmd = crate::xen::shell::join(&argv);
        let (ok, detail) = match result {
            Ok(out) => (
                out.success,
                format!("`{cmd}` exit {:?}{}", out.code, tail_text(&out)),
            ),
            Err(e) => {
                // Interrupted or timed out: virsh was killed; cancel the job too.
                let _ = XenHost::Local.run(
                    &virsh::domjobabort(&src, &name),
                    CMD_TIMEOUT,
                    &Cancel::default(),
                );
                if interrupted(&e) {
                    return Err(e);
                }
                (false, format!("{e} (job aborted with virsh domjobabort)"))
            }
        };
        // libvirt's figures: the destination keeps the completed job's
        // statistics (the source no longer has the domain).
        let stats = [&dst, &src].into_iter().filter(|_| ok).find_map(|u| {
            let out = self
                .run(&virsh::domjobinfo_completed(u, &name), CMD_TIMEOUT)
                .ok()?;
            out.success
                .then(|| virsh::parse_jobinfo(&out.stdout))
                .flatten()
        });
        let stats = stats.unwrap_or_else(|| MigrationStats {
            status: if ok { "completed" } else { "failed" }.into(),
            total_time_ms: Some(elapsed_ms),
            ..MigrationStats::default()
        });
        Ok(Outcome {
            completed: ok,
            detail,
            stats,
            elapsed_ms,
        })
    }

    fn placement(&self, leg: &Leg) -> Result<Placement, LibvirtError> {
        let on_src = self.state(leg.from)?;
        let on_dst = self.state(leg.to)?;
        let text = |s: &Option<String>| s.clone().unwrap_or_else(|| "no such domain".into());
        let detail = format!(
            "{}: {}; {}: {}",
            self.names[leg.from],
            text(&on_src),
            self.names[leg.to],
            text(&on_dst)
        );
        let live = |s: &Option<String>| s.as_deref().is_some_and(virsh::is_live);
        let location = if on_dst
            .as_deref()
            .is_some_and(|s| s == "running" || s == "idle")
        {
            GuestLocation::Destination
        } else if live(&on_src) {
            GuestLocation::Source
        } else {
            GuestLocation::Lost
        };
        Ok(Placement {
            // --undefinesource: the source has no domain of that name left.
            states_ok: location == GuestLocation::Destination && on_src.is_none(),
            location,
            detail,
        })
    }
}

fn tail_text(out: &CmdOutput) -> String {
    let t = out.tail(300).replace('\n', " | ");
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

impl Backend for LibvirtBackend {
    fn kind(&self) -> &'static str {
        "libvirt"
    }

    fn describe(&self) -> String {
        let mut v = self.versions.clone();
        v.dedup();
        format!("{} ({} driver)", v.join(" / "), self.uris[0].driver)
    }

    fn hosts(&self) -> Vec<HostReport> {
        (0..self.uris.len())
            .filter_map(|h| {
                Some(HostReport {
                    name: self.names[h].clone(),
                    caps: self.caps[h].clone()?,
                    storage: self.storage.as_ref().and_then(|s| s.report(h)),
                })
            })
            .collect()
    }

    fn route(&self) -> Vec<usize> {
        self.route.clone()
    }

    fn host_name(&self, host: usize) -> String {
        self.names.get(host).cloned().unwrap_or_else(|| "?".into())
    }

    fn answer_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn start(&mut self, host: usize, progress: &mut dyn FnMut(&Event)) -> Result<(), BackendError> {
        Ok(self.start_guest(host, progress)?)
    }

    fn ensure_running(&mut self, host: usize) -> Result<(), BackendError> {
        if self
            .last_state_check
            .is_some_and(|t| t.elapsed() < STATE_EVERY)
        {
            return Ok(());
        }
        self.last_state_check = Some(Instant::now());
        match self.state(host)? {
            Some(s) if virsh::is_live(&s) => Ok(()),
            s => Err(LibvirtError::Stopped {
                name: self.name().to_string(),
                uri: self.uris[host].to_string(),
                state: s.unwrap_or_else(|| "no such domain".into()),
            }
            .into()),
        }
    }

    fn prepare(
        &mut self,
        _leg: &Leg,
        _progress: &mut dyn FnMut(&Event),
    ) -> Result<(), BackendError> {
        Ok(())
    }

    fn migrate(&mut self, leg: &Leg, o: &CheckOptions) -> Result<Outcome, BackendError> {
        Ok(self.migrate_leg(leg, o)?)
    }

    fn locate(&mut self, leg: &Leg) -> Result<Placement, BackendError> {
        Ok(self.placement(leg)?)
    }

    fn end_leg(&mut self, leg: &Leg, completed: bool) {
        if completed {
            self.incoming[leg.to] = true;
            if let Some(c) = self.console_ref(leg.to) {
                self.console_logs.push(c);
            }
        }
    }

    fn console_tail(&self, host: usize) -> String {
        let Some(sh) = &self.shells[host] else {
            return format!(
                "(no console log: {} is not reached by ssh)",
                self.uris[host]
            );
        };
        let argv = ["tail", "-n", "40", &self.console_path(host)].map(str::to_string);
        match sh.run(&argv, CMD_TIMEOUT, &self.cancel) {
            Ok(o) if o.success => o.stdout,
            Ok(o) => format!("(no console log: {})", o.tail(300)),
            Err(e) => format!("(cannot read the console log: {e})"),
        }
    }

    fn console_logs(&self) -> Vec<PathBuf> {
        self.console_logs.clone()
    }
}

impl Drop for LibvirtBackend {
    /// Detaches the hosts this run attached to shared storage, except those
    /// the guest is still defined on; removes this run's TCG XML.
    fn drop(&mut self) {
        if let Some(storage) = &mut self.storage {
            let cancel = Cancel::default();
            let hosts: Vec<XenHost> = self.shells.iter().flatten().cloned().collect();
            let (uris, name) = (&self.uris, &self.domain.name);
            let mut guest_is_on = |h: usize| {
                XenHost::Local
                    .run(
                        &virsh::domstate(uris[h].as_str(), name),
                        CMD_TIMEOUT,
                        &cancel,
                    )
                    // Cannot tell: leave the disk where it is.
                    .map_or(true, |o| o.success)
            };
            for e in storage.release(&hosts, &cancel, &mut guest_is_on) {
                eprintln!("imgrun: warning: {e}");
            }
        }
        if let Some(d) = &self.made_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

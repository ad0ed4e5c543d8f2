//! `imgrun migrate-check --xen SRC DST DIR`: `xl create` the guest from its
//! xl.cfg, `xl migrate` it, and run the backend-agnostic checks of
//! [`crate::checks`] after every migration. Xen reports no downtime of its
//! own, so the client-seen probe gap is the downtime figure.

use std::fmt;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cancel::{Cancel, Interrupted};
use crate::checks::{self, Check, Evidence, Snapshot, names};
use crate::manifest::Manifest;
use crate::probe::Probe;
use crate::report::{GuestLocation, MigrationReport, MigrationStats, Report, RunOptions};
use crate::status::{GuestClient, GuestStatus, StatusError, TcpSession};

use super::host::{HostError, XenHost};
use super::xl;
use super::xlcfg::{XlCfg, XlCfgError};

/// Options of the Xen migration check.
#[derive(Debug, Clone)]
pub struct XenOptions {
    /// Host specs (`localhost` or `[user@]host`): the guest is created (or, if
    /// already running there, adopted) on the first and migrated along the
    /// rest. Two entries with `repeat` > 1 go back and forth. The same host
    /// twice in a row is a single-host (localhost) migration.
    pub route: Vec<String>,
    pub repeat: u32,
    pub dirty_mb: Option<u32>,
    pub threshold: Duration,
    pub boot_timeout: Duration,
    pub migrate_timeout: Duration,
    /// How long after a migration the guest is asked again (late crashes).
    pub settle: Duration,
    /// `ssh -F` file; default: `$IMGRUN_SSH_CONFIG`, else the user's ssh config.
    pub ssh_config: Option<PathBuf>,
    /// Copy the xl.cfg, kernel and ramdisk to hosts that lack them (never the
    /// disk, which must be on storage both hosts share).
    pub copy_missing: bool,
}

impl XenOptions {
    /// Defaults for one migration SRC → DST.
    pub fn new(src: &str, dst: &str) -> XenOptions {
        XenOptions {
            route: vec![src.to_string(), dst.to_string()],
            repeat: 1,
            dirty_mb: None,
            threshold: Duration::from_secs(5),
            boot_timeout: Duration::from_secs(120),
            migrate_timeout: Duration::from_secs(600),
            settle: Duration::from_secs(3),
            ssh_config: std::env::var_os("IMGRUN_SSH_CONFIG").map(PathBuf::from),
            copy_missing: true,
        }
    }

    /// The migrations as (from, to) indices into `route`.
    pub fn legs(&self) -> Vec<(usize, usize)> {
        if self.route.len() == 2 {
            (0..self.repeat.max(1))
                .map(|i| if i % 2 == 0 { (0, 1) } else { (1, 0) })
                .collect()
        } else {
            (1..self.route.len()).map(|i| (i - 1, i)).collect()
        }
    }
}

/// Progress of a run, for the UI to render.
#[derive(Debug, Clone)]
pub enum Event {
    Host {
        host: String,
        xen: String,
    },
    Copied {
        host: String,
        path: PathBuf,
    },
    Created {
        host: String,
    },
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
        ok: bool,
        ms: u64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Host { host, xen } => write!(f, "xen host {host}: Xen {xen}"),
            Event::Copied { host, path } => write!(f, "copied {} to {host}", path.display()),
            Event::Created { host } => write!(f, "xl create on {host}"),
            Event::Adopted { host, domid } => write!(
                f,
                "guest already running on {host} (domid {domid}); using it"
            ),
            Event::GuestUp { host, ms } => write!(f, "guest on {host} answered after {ms} ms"),
            Event::MigrationStarted { index, from, to } => {
                write!(f, "migration {index} started {from} -> {to}")
            }
            Event::MigrationEnded { index, ok, ms } => {
                write!(
                    f,
                    "migration {index} {} after {ms} ms",
                    if *ok { "completed" } else { "FAILED" }
                )
            }
        }
    }
}

/// Errors that stop a run before a report can be made.
#[derive(Debug, thiserror::Error)]
pub enum XenError {
    #[error(transparent)]
    Cfg(#[from] XlCfgError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Route(String),
    #[error("on {host}: `{cmd}` failed: {tail}")]
    Command {
        host: String,
        cmd: String,
        tail: String,
    },
    #[error("on {host}: {path}: {why}")]
    Artifact {
        host: String,
        path: PathBuf,
        why: String,
    },
    #[error(
        "guest {name} is already running on {host}, not on the first host of the route; migrate or destroy it first"
    )]
    AlreadyRunning { name: String, host: String },
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
    #[error("socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

const CMD_TIMEOUT: Duration = Duration::from_secs(60);

struct Run<'a> {
    cfg: XlCfg,
    o: &'a XenOptions,
    m: &'a Manifest,
    cancel: &'a Cancel,
    progress: &'a mut dyn FnMut(&Event),
    /// Unique hosts, and the route as indices into them.
    hosts: Vec<XenHost>,
    route: Vec<usize>,
    /// The guest's status service (shared with the QEMU backend).
    guest: GuestClient,
    target: SocketAddr,
    console_logs: Vec<PathBuf>,
}

/// Runs the Xen migration check for the guest in `m.dir` (its `<name>.cfg`).
pub fn run_migrate_check(
    m: &Manifest,
    o: &XenOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, XenError> {
    let start = Instant::now();
    if o.route.len() < 2 {
        return Err(XenError::Route(
            "a migration needs a source and a destination host".into(),
        ));
    }
    let dir = std::fs::canonicalize(&m.dir).map_err(|source| {
        XenError::Cfg(XlCfgError::Read {
            path: m.dir.clone(),
            source,
        })
    })?;
    let cfg = XlCfg::load(&dir.join(format!("{}.cfg", m.name)))?;
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
    for (a, b) in o.legs() {
        if route[a] != route[b] && hosts[route[b]] == XenHost::Local {
            return Err(XenError::Route(format!(
                "cannot migrate from {} to localhost: name the destination as the source reaches it",
                hosts[route[a]].name()
            )));
        }
    }
    let udp = UdpSocket::bind(("0.0.0.0", 0)).map_err(XenError::Socket)?;
    let target = SocketAddr::from((m.guest.address, m.guest.status_port));
    let mut run = Run {
        cfg,
        o,
        m,
        cancel,
        progress,
        hosts,
        route,
        guest: GuestClient::new(udp, target, cancel.clone()),
        target,
        console_logs: Vec::new(),
    };
    let xen = run.prepare_hosts()?;
    run.start_guest()?;
    let setup_ms = ms(start.elapsed());
    let legs = o.legs();
    let mut report = Report {
        backend: "xen".into(),
        guest: m.name.clone(),
        image_dir: dir,
        hypervisor: format!("Xen {xen} (xl)"),
        options: RunOptions {
            repeat: u32::try_from(legs.len()).unwrap_or(u32::MAX),
            dirty_mb: o.dirty_mb,
            stop_first: false,
            threshold_ms: u64::try_from(o.threshold.as_millis()).unwrap_or(u64::MAX),
        },
        setup_ms,
        total_ms: 0,
        migrations: Vec::new(),
        guest_location: GuestLocation::Source,
        console_logs: Vec::new(),
        error: None,
        passed: false,
    };
    let mut tcp = match run.open_tcp() {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(format!("TCP connection to the status service: {e}"));
            return Ok(run.finish(report, start));
        }
    };
    if let Some(mb) = o.dirty_mb {
        if let Err(e) = tcp.dirty(mb) {
            report.error = Some(format!("starting the dirtying workload: {e}"));
            return Ok(run.finish(report, start));
        }
    }
    for (i, (a, b)) in legs.into_iter().enumerate() {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match run.migrate_once(index, run.route[a], run.route[b], &mut tcp) {
            Ok(r) => {
                let loc = r.guest_location;
                report.guest_location = loc;
                report.migrations.push(r);
                if loc != GuestLocation::Destination {
                    report.error = Some(format!(
                        "migration {index} did not complete; later migrations skipped"
                    ));
                    break;
                }
            }
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(run.finish(report, start))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Run<'_> {
    fn emit(&mut self, e: Event) {
        (self.progress)(&e);
    }

    fn host(&self, i: usize) -> &XenHost {
        &self.hosts[i]
    }

    fn finish(mut self, mut report: Report, start: Instant) -> Report {
        report.console_logs = std::mem::take(&mut self.console_logs);
        report.total_ms = ms(start.elapsed());
        report.finish();
        report
    }

    /// Runs `argv` on host `h`, failing on a non-zero exit.
    fn must(&self, h: usize, argv: &[String], timeout: Duration) -> Result<String, XenError> {
        let out = self
            .host(h)
            .run(argv, timeout, self.cancel)
            .map_err(|e| match e {
                HostError::Interrupted { .. } => XenError::Interrupted(Interrupted),
                e => XenError::Host(e),
            })?;
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

    /// `xl info` on every host; the artifacts at the xl.cfg's paths on each.
    fn prepare_hosts(&mut self) -> Result<String, XenError> {
        let mut version = String::new();
        for h in 0..self.hosts.len() {
            self.cancel.check()?;
            let info = self.must(h, &xl::info(), CMD_TIMEOUT)?;
            let v = xl::parse_xen_version(&info).unwrap_or_else(|| "unknown".into());
            self.emit(Event::Host {
                host: self.host(h).name().to_string(),
                xen: v.clone(),
            });
            version = v;
            self.ensure_files(h)?;
        }
        Ok(version)
    }

    /// Every file of the xl.cfg must be on the host with the local size; the
    /// config, kernel and ramdisk are copied when missing (if allowed).
    fn ensure_files(&mut self, h: usize) -> Result<(), XenError> {
        let files: Vec<PathBuf> = self
            .cfg
            .files()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        for path in files {
            let p = path.to_string_lossy().into_owned();
            let local = std::fs::metadata(&path).ok().map(|md| md.len());
            let out = self.host(h).run(
                &["stat", "-L", "-c", "%s", p.as_str()],
                CMD_TIMEOUT,
                self.cancel,
            )?;
            let remote: Option<u64> = out
                .success
                .then(|| out.stdout.trim().parse().ok())
                .flatten();
            if remote.is_some() && (local.is_none() || remote == local) {
                continue;
            }
            let is_disk = self.cfg.disks.contains(&path);
            let why = match remote {
                None => "missing".to_string(),
                Some(r) => format!("{r} bytes there, {} here", local.unwrap_or(0)),
            };
            if is_disk || !self.o.copy_missing || local.is_none() || self.host(h) == &XenHost::Local
            {
                return Err(XenError::Artifact {
                    host: self.host(h).name().to_string(),
                    path,
                    why: if is_disk {
                        format!("{why}; the disk must be at this path on storage both hosts share")
                    } else {
                        why
                    },
                });
            }
            let script = "mkdir -p \"$(dirname \"$1\")\" && cat >\"$1.imgrun-tmp\" && mv \"$1.imgrun-tmp\" \"$1\"";
            let argv = ["sh", "-c", script, "sh", p.as_str()];
            let out =
                self.host(h)
                    .run_with(&argv, Some(&path), Duration::from_secs(600), self.cancel)?;
            if !out.success {
                return Err(XenError::Artifact {
                    host: self.host(h).name().to_string(),
                    path,
                    why: format!("copy failed: {}", out.tail(500)),
                });
            }
            self.emit(Event::Copied {
                host: self.host(h).name().to_string(),
                path,
            });
        }
        Ok(())
    }

    /// The live domain named like the guest on host `h`, if any.
    fn find(&self, h: usize) -> Result<Option<xl::Domain>, XenError> {
        let out = self
            .host(h)
            .run(&xl::list(&self.cfg.name), CMD_TIMEOUT, self.cancel)?;
        // `xl list NAME` fails when there is no such domain.
        Ok(xl::parse_list(&out.stdout)
            .into_iter()
            .find(|d| d.name == self.cfg.name))
    }

    fn console_ref(&self, h: usize, incoming: bool) -> String {
        format!(
            "{}:{}",
            self.host(h).name(),
            xl::console_log(&self.cfg.name, incoming)
        )
    }

    fn console_tail(&self, h: usize, incoming: bool) -> String {
        match self.host(h).run(
            &xl::console_tail(&self.cfg.name, incoming, 40),
            CMD_TIMEOUT,
            self.cancel,
        ) {
            Ok(o) if o.success => o.stdout,
            Ok(o) => format!("(no console log: {})", o.tail(300)),
            Err(e) => format!("(cannot read the console log: {e})"),
        }
    }

    /// Creates the guest on the route's first host (or adopts it there).
    fn start_guest(&mut self) -> Result<(), XenError> {
        let first = self.route[0];
        for h in 0..self.hosts.len() {
            if h != first && self.find(h)?.is_some() {
                return Err(XenError::AlreadyRunning {
                    name: self.cfg.name.clone(),
                    host: self.host(h).name().to_string(),
                });
            }
        }
        let incoming;
        if let Some(d) = self.find(first)? {
            self.emit(Event::Adopted {
                host: self.host(first).name().to_string(),
                domid: d.id,
            });
            // A guest that arrived by migration logs to guest-NAME--incoming.log.
            let log = xl::console_log(&self.cfg.name, true);
            incoming = self
                .host(first)
                .run(&["test", "-e", log.as_str()], CMD_TIMEOUT, self.cancel)
                .is_ok_and(|o| o.success);
        } else {
            let cfg = self.cfg.path.to_string_lossy().into_owned();
            self.must(first, &xl::create(&cfg), Duration::from_secs(180))?;
            self.emit(Event::Created {
                host: self.host(first).name().to_string(),
            });
            incoming = false;
        }
        self.console_logs
            .push(PathBuf::from(self.console_ref(first, incoming)));
        let start = Instant::now();
        loop {
            self.cancel.check()?;
            if self.ask(Duration::from_millis(500)).is_ok() {
                self.emit(Event::GuestUp {
                    host: self.host(first).name().to_string(),
                    ms: ms(start.elapsed()),
                });
                return Ok(());
            }
            if start.elapsed() > self.o.boot_timeout {
                return Err(XenError::GuestTimeout {
                    host: self.host(first).name().to_string(),
                    target: self.target,
                    secs: self.o.boot_timeout.as_secs(),
                    log: self.console_ref(first, incoming),
                    console: self.console_tail(first, incoming),
                });
            }
        }
    }

    fn open_tcp(&self) -> Result<TcpSession, StatusError> {
        let s =
            TcpStream::connect_timeout(&self.target, Duration::from_secs(5)).map_err(|source| {
                StatusError::Io {
                    addr: self.target,
                    source,
                }
            })?;
        TcpSession::new(s, Duration::from_secs(15))
    }

    /// One status request over UDP, retried until `within` has passed.
    fn ask(&mut self, within: Duration) -> Result<GuestStatus, StatusError> {
        self.guest.ask(within)
    }

    fn snapshot(&mut self, within: Duration) -> Result<Snapshot, String> {
        self.guest.snapshot(within)
    }

    /// Where the guest is after migrating `src` → `dst` (`before` = its domid on `src`).
    fn locate(
        &self,
        src: usize,
        dst: usize,
        before: u32,
    ) -> Result<(GuestLocation, String), XenError> {
        let on_dst = self.find(dst)?;
        if src == dst {
            return Ok(match on_dst {
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
            });
        }
        let on_src = self.find(src)?;
        Ok(match (on_src, on_dst) {
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
        })
    }

    fn migrate_once(
        &mut self,
        index: u32,
        src: usize,
        dst: usize,
        tcp: &mut TcpSession,
    ) -> Result<MigrationReport, XenError> {
        let name = self.cfg.name.clone();
        let before_dom = self.find(src)?.ok_or_else(|| {
            XenError::Route(format!(
                "guest {name} is not running on {} before migration {index}",
                self.host(src).name()
            ))
        })?;
        let before = Snapshot::from(&self.ask(Duration::from_secs(5))?);
        let argv = if src == dst {
            xl::migrate_local(&name)
        } else {
            xl::migrate_to(&name, self.host(dst).name())
        };
        let probe_sock = UdpSocket::bind(("0.0.0.0", 0)).map_err(XenError::Socket)?;
        let probe = Probe::start(probe_sock, self.target, Duration::from_millis(10))
            .map_err(XenError::Socket)?;
        self.emit(Event::MigrationStarted {
            index,
            from: self.host(src).name().to_string(),
            to: self.host(dst).name().to_string(),
        });
        let started = Instant::now();
        let result = self
            .host(src)
            .run(&argv, self.o.migrate_timeout, self.cancel);
        let elapsed_ms = ms(started.elapsed());
        // Give the probe a moment past completion, so the gap it measures is closed.
        let _ = self.ask(Duration::from_secs(10));
        let probe = probe.finish();
        let (xl_ok, xl_detail) = match &result {
            Ok(o) => {
                let said = format!("{}{}", o.stdout, o.stderr);
                let ok = o.success && said.contains("Migration successful");
                (
                    ok,
                    format!(
                        "`{}` exit {:?}: {}",
                        super::shell::join(&argv),
                        o.code,
                        o.tail(300).replace('\n', " | ")
                    ),
                )
            }
            Err(HostError::Interrupted { .. }) => return Err(XenError::Interrupted(Interrupted)),
            Err(e) => (false, e.to_string()),
        };
        self.emit(Event::MigrationEnded {
            index,
            ok: xl_ok,
            ms: elapsed_ms,
        });
        let (location, where_detail) = self.locate(src, dst, before_dom.id)?;
        let after = self.snapshot(Duration::from_secs(10));
        let (tcp_after, dirty) = tcp.after_migration(self.o.dirty_mb.is_some());
        let late = if location == GuestLocation::Destination {
            self.cancel.sleep(self.o.settle)?;
            Some(self.snapshot(Duration::from_secs(5)))
        } else {
            None
        };
        let evidence = Evidence {
            address: self.m.guest.address,
            prefix: self.m.guest.prefix,
            mac: self.m.guest.mac.clone(),
            before,
            after,
            tcp_after,
            late,
            probe: Some(probe.clone()),
            threshold: Some(self.o.threshold),
            dirty,
        };
        let mut list = vec![
            Check::new(names::MIGRATION_COMPLETED, xl_ok, xl_detail),
            Check::new(
                names::VM_STATES,
                location == GuestLocation::Destination,
                where_detail.clone(),
            ),
        ];
        if location == GuestLocation::Destination {
            list.extend(checks::guest_checks(&evidence));
            self.console_logs
                .push(PathBuf::from(self.console_ref(dst, true)));
        } else {
            // xl's own behaviour on failure: the guest keeps running on the source.
            list.push(Check::new(
                names::GUEST_ON_SOURCE,
                location == GuestLocation::Source,
                where_detail,
            ));
            let tail = self.console_tail(src, index > 1 || src != dst);
            list.push(Check::new("console-tail", false, tail.trim().to_string()));
        }
        Ok(MigrationReport {
            index,
            from: self.host(src).name().to_string(),
            to: self.host(dst).name().to_string(),
            stats: Some(MigrationStats {
                status: if xl_ok {
                    "completed".into()
                } else {
                    "failed".into()
                },
                total_time_ms: Some(elapsed_ms),
                downtime_ms: None,
                setup_time_ms: None,
                transferred_bytes: None,
            }),
            probe: Some(probe),
            checks: list,
            guest_location: location,
            elapsed_ms,
            passed: false,
        }
        .seal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_follow_the_route() {
        let mut o = XenOptions::new("h1", "h2");
        assert_eq!(o.legs(), vec![(0, 1)]);
        o.repeat = 3;
        assert_eq!(o.legs(), vec![(0, 1), (1, 0), (0, 1)]);
        o.route = vec!["h1".into(), "h1".into(), "h2".into()];
        assert_eq!(o.legs(), vec![(0, 1), (1, 2)]);
    }
}

//! A recording [`Sys`] for unit tests: every call that changes the machine
//! is appended to [`FakeSys::calls`] as one line of text, and the machine's
//! answers (files, devices, failures) are set up by the test.

use super::{Exited, MountOpts, PowerAction, Spawn, Sys, Tty};
use guest_contract::Mac;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The fake machine.
#[derive(Debug, Default)]
pub struct FakeSys {
    /// Calls that change the machine, in order, e.g. `mount proc /proc proc nosuid,nodev,noexec`.
    pub calls: Vec<String>,
    /// Log lines.
    pub logs: Vec<String>,
    /// Paths that exist.
    pub paths: BTreeSet<String>,
    /// Paths that are mount points.
    pub mount_points: BTreeSet<String>,
    /// File contents (for `read_to_string`, `read_at`, `read_dir`-less lookups).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Paths that appear once `uptime` reaches the given time.
    pub appear_at: BTreeMap<String, Duration>,
    /// Call prefixes (e.g. `load_module /lib/x.ko`) that fail.
    pub fail: BTreeSet<String>,
    /// Children that will be reported exited by `reap_one`.
    pub exits: VecDeque<Exited>,
    /// Current fake time since boot.
    pub now: Duration,
    next_pid: u32,
}

impl FakeSys {
    /// An empty machine at time 0.
    pub fn new() -> Self {
        Self {
            next_pid: 100,
            ..Self::default()
        }
    }

    /// Adds a file (and marks it existing).
    pub fn add_file(&mut self, path: &str, data: &[u8]) {
        self.paths.insert(path.to_owned());
        self.files.insert(path.to_owned(), data.to_vec());
    }

    fn record(&mut self, call: String) -> io::Result<()> {
        let failing = self.fail.iter().any(|f| call.starts_with(f.as_str()));
        self.calls.push(call);
        if failing {
            Err(io::Error::other("injected failure"))
        } else {
            Ok(())
        }
    }

    /// The recorded calls that start with `prefix`.
    pub fn calls_starting(&self, prefix: &str) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// Index of the first call equal to `call`.
    pub fn position(&self, call: &str) -> Option<usize> {
        self.calls.iter().position(|c| c == call)
    }
}

fn opts_text(o: MountOpts) -> String {
    let mut v = Vec::new();
    if o.read_only {
        v.push("ro");
    }
    if o.nosuid {
        v.push("nosuid");
    }
    if o.nodev {
        v.push("nodev");
    }
    if o.noexec {
        v.push("noexec");
    }
    if v.is_empty() {
        v.push("defaults");
    }
    v.join(",")
}

impl Sys for FakeSys {
    fn log(&mut self, msg: &str) {
        self.logs.push(msg.to_owned());
    }
    fn uptime(&self) -> Duration {
        self.now
    }
    fn sleep(&mut self, d: Duration) {
        self.now += d;
    }
    fn mkdir_p(&mut self, path: &str) -> io::Result<()> {
        self.paths.insert(path.to_owned());
        self.record(format!("mkdir {path}"))
    }
    fn exists(&self, path: &str) -> bool {
        self.paths.contains(path) || self.appear_at.get(path).is_some_and(|t| *t <= self.now)
    }
    fn is_mount_point(&self, path: &str) -> bool {
        self.mount_points.contains(path)
    }
    fn read_to_string(&self, path: &str) -> io::Result<String> {
        let data = self
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        String::from_utf8(data.clone()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let data = self
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        data.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }
    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut names: BTreeSet<String> = BTreeSet::new();
        for p in self.paths.iter().chain(self.appear_at.keys()) {
            if !self.exists(p) {
                continue;
            }
            if let Some(rest) = p.strip_prefix(&prefix) {
                if let Some(first) = rest.split('/').next().filter(|s| !s.is_empty()) {
                    names.insert(first.to_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> io::Result<()> {
        let mut call = format!("mount {source} {target} {fstype} {}", opts_text(opts));
        if !data.is_empty() {
            call.push(' ');
            call.push_str(data);
        }
        self.record(call)?;
        self.mount_points.insert(target.to_owned());
        Ok(())
    }
    fn move_mount(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.record(format!("move {from} {to}"))?;
        self.mount_points.remove(from);
        self.mount_points.insert(to.to_owned());
        Ok(())
    }
    fn remount_ro(&mut self, target: &str) -> io::Result<()> {
        self.record(format!("remount_ro {target}"))
    }
    fn clear_rootfs(&mut self) -> io::Result<()> {
        self.record("clear_rootfs".to_owned())
    }
    fn chdir(&mut self, path: &str) -> io::Result<()> {
        self.record(format!("chdir {path}"))
    }
    fn chroot(&mut self, path: &str) -> io::Result<()> {
        self.record(format!("chroot {path}"))
    }
    fn exec(&mut self, argv: &[&str]) -> io::Error {
        match self.record(format!("exec {}", argv.join(" "))) {
            Err(e) => e,
            Ok(()) => io::Error::other("fake exec"),
        }
    }
    fn load_module(&mut self, path: &str) -> io::Result<()> {
        self.record(format!("load_module {path}"))
    }
    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        self.record(format!("hostname {name}"))
    }
    fn set_link_mac(&mut self, iface: &str, mac: Mac) -> io::Result<()> {
        self.record(format!("link_mac {iface} {mac}"))
    }
    fn link_up(&mut self, iface: &str) -> io::Result<()> {
        self.record(format!("link_up {iface}"))
    }
    fn add_address(&mut self, iface: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        self.record(format!("addr {iface} {addr}/{prefix}"))
    }
    fn add_default_route(&mut self, iface: &str, gateway: Ipv4Addr) -> io::Result<()> {
        self.record(format!("route default via {gateway} dev {iface}"))
    }
    fn spawn(&mut self, spawn: &Spawn) -> io::Result<u32> {
        let tty = match &spawn.tty {
            Tty::Detached => "detached".to_owned(),
            Tty::Controlling(t) => format!("ctty={t}"),
        };
        self.record(format!("spawn {tty} {}", spawn.argv.join(" ")))?;
        self.next_pid += 1;
        Ok(self.next_pid)
    }
    fn reap_one(&mut self) -> Option<Exited> {
        self.exits.pop_front()
    }
    fn kill_all(&mut self, signal: i32) {
        self.calls.push(format!("kill_all {signal}"));
    }
    fn sync(&mut self) {
        self.calls.push("sync".to_owned());
    }
    fn power(&mut self, action: PowerAction) -> io::Error {
        self.calls.push(format!("power {action:?}"));
        io::Error::other("fake power")
    }
}

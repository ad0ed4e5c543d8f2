//! A recording [`Sys`] for unit tests (compiled only with `cfg(test)`):
//! every call that changes the machine is appended to [`FakeSys::calls`] as
//! one line of text, and the machine's answers (files, devices, addresses,
//! signals, failures) are set up by the test.

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
    /// Call prefixes (e.g. `load_module /lib/x.ko`) that fail; also
    /// `addresses <iface>` for the (unrecorded) address query.
    pub fail: BTreeSet<String>,
    /// Children that will be reported exited by `reap_one`.
    pub exits: VecDeque<Exited>,
    /// Signals `wait_signal` takes, in order; when empty it waits out its
    /// timeout.
    pub signals: VecDeque<i32>,
    /// IPv4 addresses on the links, `(interface, address, prefix)` in the
    /// kernel's order; an interface exists if `/sys/class/net/<if>` does.
    pub addrs: Vec<(String, Ipv4Addr, u8)>,
    /// True if the kernel left fds 0-2 closed (no console).
    pub stdio_closed: bool,
    /// True if the process is PID 1.
    pub pid1: bool,
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

    fn failing(&self, call: &str) -> bool {
        self.fail.iter().any(|f| call.starts_with(f.as_str()))
    }

    fn record(&mut self, call: String) -> io::Result<()> {
        let failing = self.failing(&call);
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
    fn is_pid1(&self) -> bool {
        self.pid1
    }
    fn log(&mut self, msg: &str) {
        self.logs.push(msg.to_owned());
    }
    fn uptime(&self) -> Duration {
        self.now
    }
    fn sleep(&mut self, d: Duration) {
        self.now += d;
    }
    fn stdio_is_open(&self) -> bool {
        !self.stdio_closed
    }
    fn console_to_stdio(&mut self, path: &str) -> io::Result<()> {
        self.record(format!("console_to_stdio {path}"))?;
        self.stdio_closed = false;
        Ok(())
    }
    fn block_signals(&mut self) {
        self.calls.push("block_signals".to_owned());
    }
    fn wait_signal(&mut self, timeout: Duration) -> Option<i32> {
        let sig = self.signals.pop_front();
        if sig.is_none() {
            self.now += timeout;
        }
        sig
    }
    fn cad_to_signal(&mut self) {
        self.calls.push("cad_to_signal".to_owned());
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
    fn write_file(&mut self, path: &str, contents: &str) -> io::Result<()> {
        self.record(format!("write {path} {contents:?}"))?;
        self.add_file(path, contents.as_bytes());
        Ok(())
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
    fn addresses(&self, iface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        if self.failing(&format!("addresses {iface}")) {
            return Err(io::Error::other("injected failure"));
        }
        if !self.exists(&format!("/sys/class/net/{iface}")) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(self
            .addrs
            .iter()
            .filter(|(i, _, _)| i == iface)
            .map(|(_, a, p)| (*a, *p))
            .collect())
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

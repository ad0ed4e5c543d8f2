//! The guest status service: serves the protocol of
//! [`guest_contract::status`] (requests and replies are defined there) on
//! TCP and UDP.
//!
//! `probe <n>` is answered without reading `/proc`, `/sys` and netlink: the
//! runner's downtime probe sends one every 10 ms, and a short answer path
//! matters most right after a migration, when the destination runs every
//! code path for the first time (measured under TCG: median probe gap 97 ms
//! with the full status, 54 ms with this).

use crate::sys::Sys;
use guest_contract::status::{
    DirtyCheckReply, DirtyReply, PageCheck, ProbeReply, Request, StatusReply, echo,
};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Page size the dirtier works in.
pub const PAGE: usize = 4096;

/// What the status object reports, gathered at answer time.
pub trait Probe: Send + Sync {
    /// `/proc/sys/kernel/random/boot_id`.
    fn boot_id(&self) -> String;
    /// Current host name.
    fn hostname(&self) -> String;
    /// The interface's MAC.
    fn mac(&self) -> String;
    /// The interface's IPv4 addresses as `a.b.c.d/p`.
    fn addresses(&self) -> Vec<String>;
    /// Milliseconds since boot.
    fn uptime_ms(&self) -> u64;
    /// `MemAvailable` in MiB, if known (caps the `dirty` size).
    fn mem_available_mb(&self) -> Option<u64> {
        None
    }
}

/// The pattern word for (page, generation, word index).
pub fn pattern(page: u64, generation: u64, word: u64) -> u64 {
    let x = page.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ generation.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ word;
    x ^ (x >> 29)
}

/// Memory the dirtier rewrites, with each page's last generation.
#[derive(Debug)]
pub struct DirtyMem {
    words: Vec<u64>,
    gens: Vec<u64>,
    next_page: usize,
}

const WORDS_PER_PAGE: usize = PAGE / 8;

impl DirtyMem {
    /// `mb` MiB, every page written with generation 0; `None` if the memory
    /// cannot be had (PID 1 must not die of an allocation failure).
    pub fn try_new(mb: usize) -> Option<Self> {
        let pages = mb.checked_mul(1024 * 1024 / PAGE)?;
        let mut words: Vec<u64> = Vec::new();
        words
            .try_reserve_exact(pages.checked_mul(WORDS_PER_PAGE)?)
            .ok()?;
        words.resize(pages * WORDS_PER_PAGE, 0);
        let mut gens: Vec<u64> = Vec::new();
        gens.try_reserve_exact(pages).ok()?;
        gens.resize(pages, 0);
        let mut m = Self {
            words,
            gens,
            next_page: 0,
        };
        for p in 0..pages {
            m.write_page(p, 0);
        }
        Some(m)
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.gens.len()
    }

    fn write_page(&mut self, page: usize, generation: u64) {
        let start = page * WORDS_PER_PAGE;
        if let Some(words) = self.words.get_mut(start..start + WORDS_PER_PAGE) {
            for (i, w) in words.iter_mut().enumerate() {
                *w = pattern(page as u64, generation, i as u64);
            }
        }
        if let Some(g) = self.gens.get_mut(page) {
            *g = generation;
        }
    }

    /// Rewrites the next `n` pages with their next generation.
    pub fn step(&mut self, n: usize) {
        for _ in 0..n {
            if self.gens.is_empty() {
                return;
            }
            let p = self.next_page % self.gens.len();
            let g = self.gens.get(p).copied().unwrap_or(0).wrapping_add(1);
            self.write_page(p, g);
            self.next_page = p + 1;
        }
    }

    /// Counts pages whose content is not their last generation's pattern.
    pub fn check(&self) -> usize {
        self.gens
            .iter()
            .enumerate()
            .filter(|(p, g)| {
                let start = p * WORDS_PER_PAGE;
                self.words
                    .get(start..start + WORDS_PER_PAGE)
                    .is_none_or(|words| {
                        words
                            .iter()
                            .enumerate()
                            .any(|(i, w)| *w != pattern(*p as u64, **g, i as u64))
                    })
            })
            .count()
    }

    #[cfg(test)]
    fn corrupt(&mut self, word: usize) {
        if let Some(w) = self.words.get_mut(word) {
            *w ^= 1;
        }
    }
}

/// The service's shared state.
pub struct Service {
    probe: Box<dyn Probe>,
    seq: AtomicU64,
    dirty: Mutex<Option<DirtyMem>>,
    dirty_started: AtomicBool,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Option<DirtyMem>>) -> MutexGuard<'_, Option<DirtyMem>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Service {
    /// A service reporting through `probe`.
    pub fn new(probe: Box<dyn Probe>) -> Arc<Self> {
        Arc::new(Self {
            probe,
            seq: AtomicU64::new(0),
            dirty: Mutex::new(None),
            dirty_started: AtomicBool::new(false),
        })
    }

    /// Answers one request (text already trimmed of the line end).
    pub fn answer(self: &Arc<Self>, req: &str) -> String {
        match Request::parse(req) {
            Request::Dirty(mb) => match self.start_dirty(mb as usize) {
                Ok(mb) => DirtyReply::Started {
                    dirty_mb: mb as u64,
                },
                Err(error) => DirtyReply::Refused { error },
            }
            .to_json(),
            Request::DirtyCheck => match lock(&self.dirty).as_ref() {
                Some(m) => DirtyCheckReply::Checked(PageCheck {
                    pages: m.pages() as u64,
                    bad: m.check() as u64,
                }),
                None => DirtyCheckReply::Refused {
                    error: "dirty not started".to_owned(),
                },
            }
            .to_json(),
            Request::Probe => ProbeReply {
                seq: self.next_seq(),
                req: echo(req).to_owned(),
            }
            .to_json(),
            Request::Status => StatusReply {
                boot_id: self.probe.boot_id(),
                hostname: self.probe.hostname(),
                mac: self.probe.mac(),
                addresses: self.probe.addresses(),
                uptime_ms: self.probe.uptime_ms(),
                seq: self.next_seq(),
                req: echo(req).to_owned(),
            }
            .to_json(),
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Starts the dirtier once; returns the size in use.
    fn start_dirty(self: &Arc<Self>, mb: usize) -> Result<usize, String> {
        if self.dirty_started.swap(true, Ordering::SeqCst) {
            return Ok(lock(&self.dirty)
                .as_ref()
                .map_or(mb, |m| m.pages() * PAGE / (1024 * 1024)));
        }
        // The kernel never OOM-kills PID 1: stay well inside free memory.
        if let Some(avail) = self.probe.mem_available_mb() {
            if mb as u64 > avail * 3 / 4 {
                self.dirty_started.store(false, Ordering::SeqCst);
                return Err(format!(
                    "{mb} MiB is more than 3/4 of the {avail} MiB available"
                ));
            }
        }
        let Some(mem) = DirtyMem::try_new(mb) else {
            self.dirty_started.store(false, Ordering::SeqCst);
            return Err(format!("cannot allocate {mb} MiB"));
        };
        *lock(&self.dirty) = Some(mem);
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("dirty".into())
            .spawn(move || {
                loop {
                    if let Some(m) = lock(&me.dirty).as_mut() {
                        m.step(64);
                    }
                    std::thread::yield_now();
                }
            });
        if spawned.is_err() {
            *lock(&self.dirty) = None;
            self.dirty_started.store(false, Ordering::SeqCst);
            return Err("cannot start the dirtier thread".to_owned());
        }
        Ok(mb)
    }
}

fn serve_tcp_conn(svc: Arc<Service>, stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let mut reply = svc.answer(&line);
                reply.push('\n');
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Binds TCP and UDP on `port` (all IPv4 addresses) and serves in threads.
pub fn start(svc: Arc<Service>, port: u16) -> io::Result<()> {
    let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    let s = Arc::clone(&svc);
    std::thread::Builder::new()
        .name("status-tcp".into())
        .spawn(move || {
            for conn in tcp.incoming() {
                match conn {
                    Ok(c) => {
                        let _ = c.set_nodelay(true);
                        let s2 = Arc::clone(&s);
                        let _ = std::thread::Builder::new()
                            .name("status-conn".into())
                            .spawn(move || serve_tcp_conn(s2, c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    std::thread::Builder::new()
        .name("status-udp".into())
        .spawn(move || {
            let mut buf = [0u8; 1500];
            let mut out = Vec::with_capacity(64);
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let data = buf.get(..n).unwrap_or(&[]);
                // The probe's path is kept short: after a migration under
                // TCG every instruction on it is translated afresh, and its
                // first answer is the client-seen downtime's end.
                if probe_reply(&svc, data, &mut out) {
                    let _ = udp.send_to(&out, from);
                    continue;
                }
                let reply = match std::str::from_utf8(data) {
                    Ok(req) => svc.answer(req),
                    Err(_) => svc.answer(&String::from_utf8_lossy(data)),
                };
                let _ = udp.send_to(reply.as_bytes(), from);
            }
        })?;
    Ok(())
}

/// The reply to `probe <n>` (n: up to 20 digits) written into `out`
/// without formatting machinery — the same bytes as
/// [`ProbeReply::to_json`]; false (and `out` untouched) for anything else.
fn probe_reply(svc: &Service, req: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(tag) = req.strip_prefix(b"probe ") else {
        return false;
    };
    let tag = tag.strip_suffix(b"\n").unwrap_or(tag);
    if tag.is_empty() || tag.len() > 20 || !tag.iter().all(u8::is_ascii_digit) {
        return false;
    }
    out.clear();
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(out, svc.next_seq());
    out.extend_from_slice(b",\"req\":\"probe ");
    out.extend_from_slice(tag);
    out.extend_from_slice(b"\"}");
    true
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let start = out.len();
    loop {
        out.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Some(digits) = out.get_mut(start..) {
        digits.reverse();
    }
}

/// The real [`Probe`]: `/proc`, `/sys` and netlink, asked through its own
/// [`Sys`] (only its `&self` methods; [`crate::sys::real::RealSys`] in the
/// init).
#[derive(Debug)]
pub struct SystemProbe<S> {
    /// The machine.
    pub sys: S,
    /// Interface to report.
    pub iface: String,
    /// Configured addresses, reported if netlink cannot be asked.
    pub fallback: Vec<String>,
}

impl<S: Sys> SystemProbe<S> {
    /// A file's content without surrounding white space; empty if unreadable.
    fn read_trimmed(&self, path: &str) -> String {
        self.sys
            .read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

impl<S: Sys + Send + Sync> Probe for SystemProbe<S> {
    fn boot_id(&self) -> String {
        self.read_trimmed("/proc/sys/kernel/random/boot_id")
    }
    fn hostname(&self) -> String {
        self.read_trimmed("/proc/sys/kernel/hostname")
    }
    fn mac(&self) -> String {
        self.read_trimmed(&format!("/sys/class/net/{}/address", self.iface))
    }
    fn addresses(&self) -> Vec<String> {
        match self.sys.addresses(&self.iface) {
            Ok(addrs) => addrs.into_iter().map(|(a, p)| format!("{a}/{p}")).collect(),
            Err(_) => self.fallback.clone(),
        }
    }
    fn mem_available_mb(&self) -> Option<u64> {
        let info = self.sys.read_to_string("/proc/meminfo").ok()?;
        parse_mem_available_mb(&info)
    }
    fn uptime_ms(&self) -> u64 {
        u64::try_from(self.sys.uptime().as_millis()).unwrap_or(u64::MAX)
    }
}

/// `MemAvailable` from `/proc/meminfo` text, in MiB.
pub fn parse_mem_available_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;
    use std::io::{BufRead, Write};

    struct P;
    impl Probe for P {
        fn boot_id(&self) -> String {
            "b-1".into()
        }
        fn hostname(&self) -> String {
            "busybox".into()
        }
        fn mac(&self) -> String {
            "00:16:3e:00:00:01".into()
        }
        fn addresses(&self) -> Vec<String> {
            vec!["10.99.0.2/24".into()]
        }
        fn uptime_ms(&self) -> u64 {
            1234
        }
        fn mem_available_mb(&self) -> Option<u64> {
            Some(100)
        }
    }

    #[test]
    fn status_object_and_seq() {
        let s = Service::new(Box::new(P));
        assert_eq!(
            s.answer("status\n"),
            r#"{"boot_id":"b-1","hostname":"busybox","mac":"00:16:3e:00:00:01","addresses":["10.99.0.2/24"],"uptime_ms":1234,"seq":1,"req":"status"}"#
        );
        assert!(s.answer("").contains(r#""seq":2,"req":"""#));
        let long = "x".repeat(100);
        assert!(
            s.answer(&long)
                .contains(&format!(r#""seq":3,"req":"{}""#, "x".repeat(64)))
        );
        assert!(s.answer("dirty-check").contains(r#""ok":false"#));
        assert!(s.answer("dirty nope").contains(r#""seq":4"#));
    }

    #[test]
    fn probe_answers_only_seq_and_req() {
        let s = Service::new(Box::new(P));
        assert!(s.answer("status").contains(r#""seq":1"#));
        assert_eq!(s.answer("probe 17"), r#"{"seq":2,"req":"probe 17"}"#);
        assert!(s.answer("status").contains(r#""boot_id":"b-1""#));
        assert!(s.answer("status").contains(r#""seq":4"#));
    }

    #[test]
    fn probe_fast_path_writes_what_answer_writes() {
        let (fast, slow) = (Service::new(Box::new(P)), Service::new(Box::new(P)));
        let mut out = Vec::new();
        for req in ["probe 0", "probe 17\n", "probe 18446744073709551615"] {
            assert!(probe_reply(&fast, req.as_bytes(), &mut out));
            assert_eq!(std::str::from_utf8(&out).unwrap(), slow.answer(req));
        }
        // Anything else takes the general path.
        for req in [
            "probe",
            "probe ",
            "probe x1",
            "probe 1 2",
            "status 3",
            "probe 123456789012345678901",
        ] {
            assert!(!probe_reply(&fast, req.as_bytes(), &mut out), "{req}");
        }
        let mut d = Vec::new();
        push_decimal(&mut d, 0);
        push_decimal(&mut d, 10203);
        assert_eq!(d, b"010203");
    }

    #[test]
    fn dirty_refuses_more_than_available_memory() {
        let s = Service::new(Box::new(P));
        assert_eq!(
            s.answer("dirty 76"),
            r#"{"ok":false,"error":"76 MiB is more than 3/4 of the 100 MiB available"}"#
        );
        assert_eq!(s.answer("dirty 1"), r#"{"ok":true,"dirty_mb":1}"#);
        assert_eq!(
            parse_mem_available_mb("MemTotal: 1 kB\nMemAvailable:   409600 kB\n"),
            Some(400)
        );
        assert!(DirtyMem::try_new(usize::MAX / 2).is_none());
    }

    fn probe_machine() -> FakeSys {
        let mut sys = FakeSys::new();
        sys.add_file(
            "/proc/sys/kernel/random/boot_id",
            b"5f0c3b8e-1d2a-4c6b-9e7f-0a1b2c3d4e5f\n",
        );
        sys.add_file("/proc/sys/kernel/hostname", b"cmdhost\n");
        sys.add_file("/sys/class/net/eth0/address", b"52:54:00:12:34:56\n");
        sys.add_file("/sys/class/net/eth1/address", b"52:54:00:ff:ff:ff\n");
        sys.paths.insert("/sys/class/net/eth0".into());
        sys.paths.insert("/sys/class/net/eth1".into());
        sys.addrs = vec![
            ("lo".into(), Ipv4Addr::LOCALHOST, 8),
            ("eth0".into(), Ipv4Addr::new(10, 0, 2, 15), 24),
            ("eth1".into(), Ipv4Addr::new(192, 168, 7, 2), 16),
            ("eth0".into(), Ipv4Addr::new(10, 99, 0, 2), 32),
        ];
        sys.add_file(
            "/proc/meminfo",
            b"MemTotal:         500000 kB\nMemFree:          300000 kB\nMemAvailable:     435200 kB\n",
        );
        sys.now = Duration::from_micros(2_345_999);
        sys
    }

    fn system_probe(sys: FakeSys) -> SystemProbe<FakeSys> {
        SystemProbe {
            sys,
            iface: "eth0".into(),
            fallback: vec!["10.0.2.15/24".into()],
        }
    }

    #[test]
    fn system_probe_reports_the_machine() {
        let p = system_probe(probe_machine());
        assert_eq!(p.boot_id(), "5f0c3b8e-1d2a-4c6b-9e7f-0a1b2c3d4e5f");
        assert_eq!(p.hostname(), "cmdhost");
        assert_eq!(p.mac(), "52:54:00:12:34:56");
        assert_eq!(p.addresses(), ["10.0.2.15/24", "10.99.0.2/32"]);
        assert_eq!(p.uptime_ms(), 2345);
        assert_eq!(p.mem_available_mb(), Some(425));
        // only reads: nothing recorded
        assert!(p.sys.calls.is_empty());
        let s = Service::new(Box::new(p));
        assert_eq!(
            s.answer("status"),
            r#"{"boot_id":"5f0c3b8e-1d2a-4c6b-9e7f-0a1b2c3d4e5f","hostname":"cmdhost","mac":"52:54:00:12:34:56","addresses":["10.0.2.15/24","10.99.0.2/32"],"uptime_ms":2345,"seq":1,"req":"status"}"#
        );
        assert_eq!(
            s.answer("dirty 319"),
            r#"{"ok":false,"error":"319 MiB is more than 3/4 of the 425 MiB available"}"#
        );
    }

    #[test]
    fn system_probe_falls_back() {
        // netlink cannot be asked: the configured addresses
        let mut sys = probe_machine();
        sys.fail.insert("addresses eth0".into());
        assert_eq!(system_probe(sys).addresses(), ["10.0.2.15/24"]);
        // the interface is gone (no ifindex): the configured addresses
        let mut sys = probe_machine();
        sys.paths.remove("/sys/class/net/eth0");
        assert_eq!(system_probe(sys).addresses(), ["10.0.2.15/24"]);
        // asked, and it has none: none (not the fallback)
        let mut sys = probe_machine();
        sys.addrs.retain(|(i, _, _)| i != "eth0");
        assert!(system_probe(sys).addresses().is_empty());
        // nothing readable: empty strings, no memory figure
        let p = system_probe(FakeSys::new());
        assert_eq!(
            (p.boot_id(), p.hostname(), p.mac()),
            (String::new(), String::new(), String::new())
        );
        assert_eq!(p.mem_available_mb(), None);
        assert_eq!(p.uptime_ms(), 0);
        let mut sys = FakeSys::new();
        sys.add_file("/proc/meminfo", b"MemTotal: 1 kB\n");
        assert_eq!(system_probe(sys).mem_available_mb(), None);
    }

    #[test]
    fn dirty_memory_verifies_and_detects_corruption() {
        let mut m = DirtyMem::try_new(1).unwrap();
        assert_eq!(m.pages(), 256);
        m.step(300);
        assert_eq!(m.check(), 0);
        m.corrupt(5 * WORDS_PER_PAGE + 3);
        assert_eq!(m.check(), 1);
    }

    #[test]
    fn serves_tcp_and_udp_on_loopback() {
        let s = Service::new(Box::new(P));
        // A port free for TCP may be taken for UDP (other tests and programs
        // run meanwhile): try free TCP ports until both bind.
        let port = (0..50)
            .find_map(|_| {
                let port = TcpListener::bind("127.0.0.1:0")
                    .ok()?
                    .local_addr()
                    .ok()?
                    .port();
                start(Arc::clone(&s), port).ok().map(|()| port)
            })
            .expect("no port free for both TCP and UDP in 50 tries");
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut r = std::io::BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        c.write_all(b"status\n").unwrap();
        r.read_line(&mut line).unwrap();
        assert!(line.ends_with("\"seq\":1,\"req\":\"status\"}\n"), "{line}");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"hi", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 1500];
        let n = u.recv(&mut buf).unwrap();
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains("\"seq\":2,\"req\":\"hi\"")
        );
        line.clear();
        c.write_all(b"dirty 2\n").unwrap();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"ok\":true,\"dirty_mb\":2}\n");
        std::thread::sleep(Duration::from_millis(50));
        line.clear();
        c.write_all(b"dirty-check\n").unwrap();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"ok\":true,\"pages\":512,\"bad\":0}\n");
    }
}

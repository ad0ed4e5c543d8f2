//! The downtime a client sees: a UDP request every 10 ms, each answer
//! timestamped; beside it, where a raw socket can be had, an ICMP echo
//! every 10 ms, which the guest's kernel answers without the init.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use guest_contract::status::{ProbeReply, Request, probe_tag};
use serde::Serialize;

use crate::icmp::IcmpSocket;

/// What the ICMP echo beside the UDP probe saw (answered by the guest's
/// kernel, not by its status service).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EchoSummary {
    pub sent: u64,
    pub answered: u64,
    /// As [`ProbeSummary::longest_gap_ms`], on the same clock.
    pub longest_gap_ms: f64,
    pub gap_start_ms: f64,
}

/// What the probe saw.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProbeSummary {
    pub interval_ms: f64,
    pub sent: u64,
    pub answered: u64,
    /// Answers to a request that had already been answered (a stale bridge
    /// entry or a second live copy of the guest would show here).
    pub duplicates: u64,
    pub duration_ms: f64,
    /// The longest time without any answer, in ms (start and end of the
    /// probe window count as edges, so a guest that never answers again shows
    /// the whole remaining window).
    pub longest_gap_ms: f64,
    /// When that gap began, in ms after the probe started.
    pub gap_start_ms: f64,
    /// The ICMP echo's view of the same window (none: no raw socket here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<EchoSummary>,
}

/// Longest gap between consecutive answer times (offsets from the start),
/// counting the window's start and `end` as edges. Returns `(gap, gap_start)`.
pub fn longest_gap(answers: &[Duration], end: Duration) -> (Duration, Duration) {
    let mut prev = Duration::ZERO;
    let mut best = (Duration::ZERO, Duration::ZERO);
    for &t in answers.iter().chain(std::iter::once(&end)) {
        let gap = t.saturating_sub(prev);
        if gap > best.0 {
            best = (gap, prev);
        }
        prev = prev.max(t);
    }
    best
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The number `n` of the `probe <n>` request a reply answers (its `req`).
pub fn request_number(reply: &[u8]) -> Option<u64> {
    let r = ProbeReply::from_json(std::str::from_utf8(reply).ok()?).ok()?;
    probe_tag(&r.req)
}

/// A running probe; [`Probe::finish`] stops it and returns the summary.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    /// Answers so far (the UDP probe's).
    answered: Arc<AtomicU64>,
    handle: JoinHandle<ProbeSummary>,
    echo: Option<JoinHandle<EchoSummary>>,
}

impl Probe {
    /// Starts probing `target` from `sock` (created inside the namespace) and
    /// returns once the first answer came back (or after a second without
    /// one), so that the probe certainly covers what follows.
    /// `icmp`, when given, pings `target`'s address on the same clock.
    pub fn start(
        sock: UdpSocket,
        icmp: Option<IcmpSocket>,
        target: SocketAddr,
        interval: Duration,
    ) -> std::io::Result<Probe> {
        sock.set_read_timeout(Some(Duration::from_millis(1)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let echo = match (icmp, target.ip()) {
            (Some(icmp), std::net::IpAddr::V4(to)) => {
                let flag = Arc::clone(&stop);
                Some(std::thread::spawn(move || {
                    echo(&icmp, to, start, interval, &flag)
                }))
            }
            _ => None,
        };
        let flag = Arc::clone(&stop);
        let answered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&answered);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            run(&sock, target, start, interval, &flag, &count, &ready_tx)
        });
        let _ = ready.recv_timeout(Duration::from_secs(2));
        Ok(Probe {
            stop,
            answered,
            handle,
            echo,
        })
    }

    /// Waits until `n` more answers came in than when called (or `within`
    /// passed): after a migration, the guest answers the probe steadily
    /// again before the checks send it heavier requests, which its one
    /// status thread would otherwise serve first (under TCG, with every
    /// instruction translated afresh, that alone took ~60 ms).
    pub fn wait_for_answers(&self, n: u64, within: Duration) {
        let target = self.answered.load(Ordering::SeqCst) + n;
        let start = Instant::now();
        while self.answered.load(Ordering::SeqCst) < target && start.elapsed() < within {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the probe and returns what it saw.
    pub fn finish(self) -> ProbeSummary {
        self.stop.store(true, Ordering::SeqCst);
        let mut s = self.handle.join().unwrap_or_default();
        s.icmp = self.echo.and_then(|h| h.join().ok());
        s
    }
}

/// Pings `to` every `interval` until `stop`; the gap is measured up to the
/// same end as the UDP probe's (the moment `stop` is seen).
fn echo(
    sock: &IcmpSocket,
    to: std::net::Ipv4Addr,
    start: Instant,
    interval: Duration,
    stop: &AtomicBool,
) -> EchoSummary {
    // Our identifier: two runs in one namespace do not take each other's replies.
    let id = (std::process::id() & 0xffff) as u16;
    let mut next_send = start;
    let (mut sent, mut answers) = (0u64, Vec::new());
    let mut seen = std::collections::HashSet::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next_send {
            if sock.send_echo(to, id, (sent & 0xffff) as u16).is_ok() {
                sent += 1;
            }
            next_send = (next_send + interval).max(now);
        }
        let wait = next_send.saturating_duration_since(Instant::now());
        if let Some(seq) = sock.recv_reply(to, id, wait) {
            if seen.insert(seq) {
                answers.push(start.elapsed());
            }
        }
    }
    let (gap, at) = longest_gap(&answers, start.elapsed());
    EchoSummary {
        sent,
        answered: answers.len() as u64,
        longest_gap_ms: ms(gap),
        gap_start_ms: ms(at),
    }
}

fn run(
    sock: &UdpSocket,
    target: SocketAddr,
    start: Instant,
    interval: Duration,
    stop: &AtomicBool,
    answered: &AtomicU64,
    ready: &std::sync::mpsc::Sender<()>,
) -> ProbeSummary {
    let mut next_send = start;
    let mut sent = 0u64;
    let mut answers: Vec<Duration> = Vec::new();
    let mut buf = [0u8; 2048];
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if answers.is_empty() && start.elapsed() > Duration::from_secs(1) {
            let _ = ready.send(());
        }
        let now = Instant::now();
        if now >= next_send {
            if sock
                .send_to(Request::Probe.text(Some(sent)).as_bytes(), target)
                .is_ok()
            {
                sent += 1;
            }
            next_send += interval;
            if next_send < now {
                next_send = now + interval;
            }
        }
        let wait = next_send
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(200));
        let _ = sock.set_read_timeout(Some(wait));
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == target && n > 0 {
                answers.push(start.elapsed());
                answered.fetch_add(1, Ordering::SeqCst);
                if let Some(req) = request_number(&buf[..n]) {
                    if !seen.insert(req) {
                        duplicates += 1;
                    }
                }
                if answers.len() == 1 {
                    let _ = ready.send(());
                }
            }
        }
    }
    let end = start.elapsed();
    let (gap, at) = longest_gap(&answers, end);
    ProbeSummary {
        interval_ms: ms(interval),
        sent,
        answered: answers.len() as u64,
        duplicates,
        duration_ms: ms(end),
        longest_gap_ms: ms(gap),
        gap_start_ms: ms(at),
        icmp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn gap_between_answers() {
        let (g, at) = longest_gap(&[d(1), d(11), d(21), d(180), d(190)], d(200));
        assert_eq!((g, at), (d(159), d(21)));
    }

    #[test]
    fn replies_name_their_request() {
        assert_eq!(request_number(br#"{"seq":3,"req":"probe 17"}"#), Some(17));
        assert_eq!(request_number(br#"{"seq":3,"req":"status"}"#), None);
        assert_eq!(request_number(b"probe 17"), None);
    }

    #[test]
    fn no_answers_is_the_whole_window() {
        assert_eq!(longest_gap(&[], d(500)), (d(500), d(0)));
    }

    #[test]
    fn silence_at_the_end_counts() {
        assert_eq!(longest_gap(&[d(5), d(15)], d(1000)), (d(985), d(15)));
    }

    #[test]
    fn probe_against_a_local_echo_sees_no_big_gap() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        server.set_read_timeout(Some(d(500))).unwrap();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut n = 0;
            // Answer everything for a while, then go silent.
            while let Ok((len, from)) = server.recv_from(&mut buf) {
                n += 1;
                if n <= 10 {
                    server.send_to(&buf[..len], from).unwrap();
                }
            }
        });
        let p = Probe::start(UdpSocket::bind("127.0.0.1:0").unwrap(), None, target, d(10)).unwrap();
        // Waits for answers while there are some; gives up at the deadline.
        let t = Instant::now();
        p.wait_for_answers(3, d(1000));
        assert!(t.elapsed() < d(200), "{:?}", t.elapsed());
        std::thread::sleep(d(400));
        let t = Instant::now();
        p.wait_for_answers(1, d(100));
        assert!(
            t.elapsed() >= d(100),
            "no answers any more: waited the whole time"
        );
        let s = p.finish();
        h.join().unwrap();
        assert!(s.sent >= 20, "{s:?}");
        assert_eq!(s.answered, 10, "{s:?}");
        // The silence after the 10th answer is the longest gap.
        assert!(s.longest_gap_ms > 200.0, "{s:?}");
        assert!(s.gap_start_ms < 200.0, "{s:?}");
    }
}

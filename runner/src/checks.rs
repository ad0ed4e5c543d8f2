//! Named, backend-agnostic checks of one live migration.
//!
//! The driver ([`crate::migrate`]) gathers [`Evidence`] — the guest's
//! [`Snapshot`] before, what it answered after, the probe — and calls
//! [`guest_checks`]; the backend's own view comes in as [`Check::new`]s.
//! The `--workload` checks are [`workload`]'s.

use std::time::Duration;

use guest_contract::status::{PageCheck, StatusReply};
use guest_contract::{Ipv4Cidr, Mac};
use serde::{Deserialize, Serialize};

use crate::probe::ProbeSummary;

pub mod workload;

/// What identifies a running guest, recorded before and after migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub boot_id: String,
    pub mac: String,
    pub addresses: Vec<String>,
    pub seq: u64,
    pub uptime_ms: u64,
}

impl From<&StatusReply> for Snapshot {
    fn from(s: &StatusReply) -> Snapshot {
        Snapshot {
            boot_id: s.boot_id.clone(),
            mac: s.mac.to_ascii_lowercase(),
            addresses: s.addresses.clone(),
            seq: s.seq,
            uptime_ms: s.uptime_ms,
        }
    }
}

/// One named pass/fail result with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// A measurement reported, not judged (`passed` is then always true).
    #[serde(default)]
    pub informational: bool,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            passed,
            detail: detail.into(),
            informational: false,
        }
    }

    /// A measurement that is shown but never fails the run.
    pub fn info(name: &str, detail: impl Into<String>) -> Check {
        Check {
            informational: true,
            ..Check::new(name, true, detail)
        }
    }

    /// `PASS`, `FAIL` or `INFO`, for the table.
    pub fn verdict(&self) -> &'static str {
        match (self.informational, self.passed) {
            (true, _) => "INFO",
            (false, true) => "PASS",
            (false, false) => "FAIL",
        }
    }
}

/// How the longest probe gap is judged (`--threshold-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapLimit {
    /// It must not exceed this.
    Max(Duration),
    /// Reported only (`off`): under nested emulation a wall-clock gap is a
    /// measurement of the machine's load as much as of the migration.
    Off,
}

impl GapLimit {
    /// The limit, if there is one.
    pub fn max(self) -> Option<Duration> {
        match self {
            GapLimit::Max(d) => Some(d),
            GapLimit::Off => None,
        }
    }
}

impl std::str::FromStr for GapLimit {
    type Err = String;

    /// Milliseconds, or `off`.
    fn from_str(s: &str) -> Result<GapLimit, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(GapLimit::Off);
        }
        s.parse::<u64>()
            .map(|ms| GapLimit::Max(Duration::from_millis(ms)))
            .map_err(|_| format!("{s:?} is neither a number of milliseconds nor `off`"))
    }
}

/// Names of the guest checks, stable for JSON consumers.
pub mod names {
    pub const SAME_IP: &str = "same-ip";
    pub const SAME_MAC: &str = "same-mac";
    pub const SAME_BOOT: &str = "same-boot";
    pub const SEQ_CONTINUED: &str = "seq-continued";
    pub const TCP_SURVIVED: &str = "tcp-survived";
    pub const PROBE_GAP: &str = "probe-gap";
    pub const ANSWERED_AGAIN: &str = "answered-again";
    pub const LATE_RECHECK: &str = "late-recheck";
    pub const MEMORY_INTACT: &str = "memory-intact";
    pub const MIGRATION_COMPLETED: &str = "migration-completed";
    pub const VM_STATES: &str = "vm-states";
    pub const GUEST_ON_SOURCE: &str = "guest-on-source";
    pub const WORKLOAD_RUNNING: &str = "workload-running";
    pub const WORKLOAD_EXIT: &str = "workload-exit";
    pub const WORKLOAD_CHECK: &str = "workload-check";
    pub const HOST_CHECK: &str = "host-check";
}

/// Everything observed around one migration, backend-independent.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The address and prefix the guest was built with.
    pub address: Ipv4Cidr,
    /// The MAC the guest was built with.
    pub mac: Mac,
    /// Recorded just before migrating.
    pub before: Snapshot,
    /// Asked over UDP at the guest's address after migration.
    pub after: Result<Snapshot, String>,
    /// How long `after` took, from the migration's end to the answer (or
    /// to giving up).
    pub after_took: Duration,
    /// How long the guest had to answer `after` (the backend's deadline).
    pub after_deadline: Duration,
    /// Asked over the TCP connection opened before migration.
    pub tcp_after: Result<Snapshot, String>,
    /// Asked again some seconds later (late crashes); `None` if not done.
    pub late: Option<Result<Snapshot, String>>,
    /// The probe's view; `None` if no probe ran.
    pub probe: Option<ProbeSummary>,
    /// How the probe gap is judged; `None` omits that check (non-live baseline).
    pub threshold: Option<GapLimit>,
    /// `dirty-check` after migration, when a dirtying workload ran.
    pub dirty: Option<Result<PageCheck, String>>,
}

fn answered<'a>(r: &'a Result<Snapshot, String>, what: &str) -> Result<&'a Snapshot, String> {
    r.as_ref()
        .map_err(|e| format!("{what} did not answer: {e}"))
}

/// The guest answers at its address, and reports that address on eth0.
pub fn same_ip(e: &Evidence) -> Check {
    let want = e.address.to_string();
    match answered(&e.after, "the guest") {
        Err(d) => Check::new(names::SAME_IP, false, d),
        Ok(a) if a.addresses.contains(&want) => Check::new(
            names::SAME_IP,
            true,
            format!("answers at {} and reports {want}", e.address.addr()),
        ),
        Ok(a) => Check::new(
            names::SAME_IP,
            false,
            format!(
                "answers at {} but reports {:?}, not {want}",
                e.address.addr(),
                a.addresses
            ),
        ),
    }
}

/// Same MAC before and after, and the one the guest was built with.
pub fn same_mac(e: &Evidence) -> Check {
    let want = e.mac.to_string();
    match answered(&e.after, "the guest") {
        Err(d) => Check::new(names::SAME_MAC, false, d),
        Ok(a) => {
            let ok = a.mac == e.before.mac && a.mac == want;
            Check::new(
                names::SAME_MAC,
                ok,
                format!(
                    "before {}, after {}, configured {want}",
                    e.before.mac, a.mac
                ),
            )
        }
    }
}

/// Same `boot_id`: the guest did not reboot.
pub fn same_boot(e: &Evidence) -> Check {
    match answered(&e.after, "the guest") {
        Err(d) => Check::new(names::SAME_BOOT, false, d),
        Ok(a) => Check::new(
            names::SAME_BOOT,
            a.boot_id == e.before.boot_id && !a.boot_id.is_empty(),
            format!("before {}, after {}", e.before.boot_id, a.boot_id),
        ),
    }
}

/// The reply counter continued (a restarted service would count from 1 again).
pub fn seq_continued(e: &Evidence) -> Check {
    match answered(&e.after, "the guest") {
        Err(d) => Check::new(names::SEQ_CONTINUED, false, d),
        Ok(a) => Check::new(
            names::SEQ_CONTINUED,
            a.seq > e.before.seq && a.uptime_ms >= e.before.uptime_ms,
            format!(
                "seq {} -> {}, uptime {} ms -> {} ms",
                e.before.seq, a.seq, e.before.uptime_ms, a.uptime_ms
            ),
        ),
    }
}

/// The TCP connection opened before migration still answers, from the same boot.
pub fn tcp_survived(e: &Evidence) -> Check {
    match answered(&e.tcp_after, "the TCP connection") {
        Err(d) => Check::new(names::TCP_SURVIVED, false, d),
        Ok(t) => Check::new(
            names::TCP_SURVIVED,
            t.boot_id == e.before.boot_id,
            format!("answered on the old connection, seq {}", t.seq),
        ),
    }
}

/// The guest answered its status service again once the migration ended,
/// within the backend's deadline: what no load can excuse, whatever the
/// probe gap was.
pub fn answered_again(e: &Evidence) -> Check {
    let secs = e.after_deadline.as_secs_f64();
    match &e.after {
        Ok(_) => Check::new(
            names::ANSWERED_AGAIN,
            true,
            format!(
                "answered {:.0} ms after the migration ended (deadline {secs:.0} s)",
                e.after_took.as_secs_f64() * 1000.0
            ),
        ),
        Err(err) => Check::new(
            names::ANSWERED_AGAIN,
            false,
            format!("no answer within {secs:.0} s of the migration's end: {err}"),
        ),
    }
}

/// The longest probe gap is under the limit; with [`GapLimit::Off`] it is
/// reported as an informational check.
pub fn probe_gap(probe: &ProbeSummary, limit: GapLimit) -> Check {
    let counts = format!(
        "{}/{} probes answered{}",
        probe.answered,
        probe.sent,
        if probe.duplicates > 0 {
            format!(", {} duplicate answers", probe.duplicates)
        } else {
            String::new()
        }
    );
    match limit {
        GapLimit::Max(d) => {
            let limit = d.as_secs_f64() * 1000.0;
            Check::new(
                names::PROBE_GAP,
                probe.answered > 0 && probe.longest_gap_ms <= limit,
                format!(
                    "longest gap {:.1} ms (limit {limit:.0} ms); {counts}",
                    probe.longest_gap_ms
                ),
            )
        }
        GapLimit::Off => Check::info(
            names::PROBE_GAP,
            format!(
                "longest gap {:.1} ms (not limited: --threshold-ms off); {counts}",
                probe.longest_gap_ms
            ),
        ),
    }
}

/// The guest still answers, same boot, a few seconds after completion.
pub fn late_recheck(e: &Evidence, late: &Result<Snapshot, String>) -> Check {
    match answered(late, "the guest") {
        Err(d) => Check::new(names::LATE_RECHECK, false, d),
        Ok(l) => Check::new(
            names::LATE_RECHECK,
            l.boot_id == e.before.boot_id && l.seq > e.before.seq,
            format!("still answering, uptime {} ms, seq {}", l.uptime_ms, l.seq),
        ),
    }
}

/// Every page the dirtying workload wrote holds its last pattern.
pub fn memory_intact(r: &Result<PageCheck, String>) -> Check {
    match r {
        Err(e) => Check::new(
            names::MEMORY_INTACT,
            false,
            format!("dirty-check failed: {e}"),
        ),
        Ok(d) => Check::new(
            names::MEMORY_INTACT,
            d.bad == 0 && d.pages > 0,
            format!("{} pages checked, {} bad", d.pages, d.bad),
        ),
    }
}

/// All guest-side checks for the evidence, in report order.
pub fn guest_checks(e: &Evidence) -> Vec<Check> {
    let mut v = vec![
        answered_again(e),
        same_ip(e),
        same_mac(e),
        same_boot(e),
        seq_continued(e),
        tcp_survived(e),
    ];
    if let (Some(p), Some(t)) = (&e.probe, e.threshold) {
        v.push(probe_gap(p, t));
    }
    if let Some(d) = &e.dirty {
        v.push(memory_intact(d));
    }
    if let Some(l) = &e.late {
        v.push(late_recheck(e, l));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: u64) -> Snapshot {
        Snapshot {
            boot_id: "b1".into(),
            mac: "00:16:3e:00:00:01".into(),
            addresses: vec!["10.99.0.2/24".into()],
            seq,
            uptime_ms: seq * 100,
        }
    }

    fn evidence() -> Evidence {
        Evidence {
            address: "10.99.0.2/24".parse().unwrap(),
            mac: "00:16:3E:00:00:01".parse().unwrap(),
            before: snap(5),
            after: Ok(snap(90)),
            after_took: Duration::from_millis(12),
            after_deadline: Duration::from_secs(10),
            tcp_after: Ok(snap(91)),
            late: Some(Ok(snap(95))),
            probe: Some(ProbeSummary {
                interval_ms: 10.0,
                sent: 100,
                answered: 95,
                duplicates: 0,
                duration_ms: 1000.0,
                longest_gap_ms: 42.0,
                gap_start_ms: 300.0,
                icmp: None,
            }),
            threshold: Some(GapLimit::Max(Duration::from_millis(1000))),
            dirty: Some(Ok(PageCheck {
                pages: 16384,
                bad: 0,
            })),
        }
    }

    fn failed(v: &[Check]) -> Vec<&str> {
        v.iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_clean_migration_passes_everything() {
        let v = guest_checks(&evidence());
        assert_eq!(v.len(), 9);
        assert!(failed(&v).is_empty(), "{v:?}");
    }

    #[test]
    fn a_reboot_fails_boot_and_seq() {
        let mut e = evidence();
        let mut rebooted = snap(1);
        rebooted.boot_id = "b2".into();
        e.after = Ok(rebooted.clone());
        e.tcp_after = Err("connection reset".into());
        e.late = Some(Ok(rebooted));
        assert_eq!(
            failed(&guest_checks(&e)),
            vec!["same-boot", "seq-continued", "tcp-survived", "late-recheck"]
        );
    }

    #[test]
    fn a_silent_guest_fails_all_answer_checks() {
        let mut e = evidence();
        e.after = Err("timeout".into());
        e.after_took = Duration::from_secs(10);
        let v = guest_checks(&e);
        assert_eq!(
            failed(&v),
            vec![
                "answered-again",
                "same-ip",
                "same-mac",
                "same-boot",
                "seq-continued"
            ]
        );
        assert_eq!(
            v[0].detail,
            "no answer within 10 s of the migration's end: timeout"
        );
        assert!(v[1].detail.contains("did not answer: timeout"));
    }

    #[test]
    fn wrong_address_or_mac_fail() {
        let mut e = evidence();
        let mut moved = snap(90);
        moved.addresses = vec!["10.99.0.3/24".into()];
        moved.mac = "00:16:3e:00:00:02".into();
        e.after = Ok(moved);
        assert_eq!(failed(&guest_checks(&e)), vec!["same-ip", "same-mac"]);
    }

    #[test]
    fn gap_over_threshold_and_bad_pages_fail() {
        let mut e = evidence();
        e.threshold = Some(GapLimit::Max(Duration::from_millis(40)));
        e.dirty = Some(Ok(PageCheck {
            pages: 16384,
            bad: 3,
        }));
        assert_eq!(
            failed(&guest_checks(&e)),
            vec!["probe-gap", "memory-intact"]
        );
    }

    #[test]
    fn baseline_omits_the_gap_check() {
        let mut e = evidence();
        e.threshold = None;
        e.dirty = None;
        e.late = None;
        let v = guest_checks(&e);
        assert!(v.iter().all(|c| c.name != "probe-gap"));
        assert_eq!(v.len(), 6);
    }

    #[test]
    fn the_gap_with_and_without_a_limit() {
        let probe = |gap: f64, answered: u64| ProbeSummary {
            interval_ms: 10.0,
            sent: 2000,
            answered,
            duplicates: 0,
            duration_ms: 20000.0,
            longest_gap_ms: gap,
            gap_start_ms: 100.0,
            icmp: None,
        };
        let max = |ms| GapLimit::Max(Duration::from_millis(ms));
        // (gap ms, answers, limit, passed, informational)
        let table = [
            (42.0, 95, max(1000), true, false),
            (1000.0, 95, max(1000), true, false),
            (1000.5, 95, max(1000), false, false),
            (15250.0, 500, max(15000), false, false),
            (0.0, 0, max(1000), false, false),
            // Not limited: the 15.25 s of a busy nested run is reported, never failed.
            (15250.0, 500, GapLimit::Off, true, true),
            (20000.0, 0, GapLimit::Off, true, true),
        ];
        for (gap, answered, limit, passed, info) in table {
            let c = probe_gap(&probe(gap, answered), limit);
            assert_eq!(
                (c.passed, c.informational),
                (passed, info),
                "{gap} ms, {answered} answers, {limit:?}: {}",
                c.detail
            );
            assert_eq!(
                c.verdict(),
                if info {
                    "INFO"
                } else if passed {
                    "PASS"
                } else {
                    "FAIL"
                }
            );
        }
        let c = probe_gap(&probe(15250.0, 500), GapLimit::Off);
        assert_eq!(
            c.detail,
            "longest gap 15250.0 ms (not limited: --threshold-ms off); 500/2000 probes answered"
        );
    }

    #[test]
    fn without_a_limit_only_the_answer_is_asserted() {
        let mut e = evidence();
        e.threshold = Some(GapLimit::Off);
        e.probe.as_mut().unwrap().longest_gap_ms = 15250.0;
        let v = guest_checks(&e);
        assert!(failed(&v).is_empty(), "{v:?}");
        assert_eq!(v[0].name, "answered-again");
        assert_eq!(
            v[0].detail,
            "answered 12 ms after the migration ended (deadline 10 s)"
        );
        // A guest that never answers again fails, limit or not.
        e.after = Err("timeout".into());
        assert_eq!(failed(&guest_checks(&e))[0], "answered-again");
    }

    #[test]
    fn gap_limits_parse() {
        assert_eq!("off".parse(), Ok(GapLimit::Off));
        assert_eq!("OFF".parse(), Ok(GapLimit::Off));
        assert_eq!(
            "15000".parse(),
            Ok(GapLimit::Max(Duration::from_millis(15000)))
        );
        assert_eq!(GapLimit::Off.max(), None);
        let e = "15s".parse::<GapLimit>().unwrap_err();
        assert_eq!(e, "\"15s\" is neither a number of milliseconds nor `off`");
        assert!("-1".parse::<GapLimit>().is_err());
    }
}

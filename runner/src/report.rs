//! The migration report: a table for people and a JSON document for CI.
//! Backend-agnostic: every backend's report has this shape.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::checks::Check;
use crate::probe::ProbeSummary;
use crate::xen::caps::HostCaps;

/// Where the guest is (or last was) running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestLocation {
    /// On the host it was migrated from (a failed or cancelled migration).
    Source,
    /// On the host it was migrated to.
    Destination,
    /// Running nowhere the runner could find.
    Lost,
}

/// The hypervisor's own migration figures (QEMU's `query-migrate`; Xen's
/// `xl migrate` gives only its status and the runner's wall-clock time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationStats {
    pub status: String,
    pub total_time_ms: Option<u64>,
    pub downtime_ms: Option<u64>,
    pub setup_time_ms: Option<u64>,
    pub transferred_bytes: Option<u64>,
}

/// A host of the route as its hypervisor describes itself (Xen: `xl info`,
/// read before anything was created there; QEMU reports none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// As in the migrations' `from` and `to`.
    pub name: String,
    /// `xen_version`, `virt_caps`, `xen_caps`, `xen_changeset`,
    /// `xen_commandline` and `build` (`cc_*`, `build_id`).
    #[serde(flatten)]
    pub caps: HostCaps,
    /// The guest's shared storage as this host reaches it (absent for a
    /// file, and before it was attached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<HostStorage>,
}

/// A host's block device for the guest's shared storage (iSCSI, NBD, phy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStorage {
    /// The storage, `iscsi iqn.… at 10.99.0.1:3260, LUN 1`.
    pub storage: String,
    /// The xl.cfg's disk target on the host.
    pub target: String,
    /// The block device it is there, `/dev/sdb`.
    pub device: String,
    pub size_bytes: u64,
    /// This run attached it (it was not before the run).
    pub attached_by_run: bool,
}

/// One migration (one leg of `--repeat`).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// 1-based.
    pub index: u32,
    pub from: String,
    pub to: String,
    pub stats: Option<MigrationStats>,
    pub probe: Option<ProbeSummary>,
    pub checks: Vec<Check>,
    pub guest_location: GuestLocation,
    /// Wall-clock time from issuing the migration to its completion, as the runner saw it.
    pub elapsed_ms: u64,
    /// After a failed migration: the end of the guest's console on the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_tail: Option<String>,
    pub passed: bool,
}

impl MigrationReport {
    /// Sets `passed` from the checks (no checks never passes).
    pub fn seal(mut self) -> MigrationReport {
        self.passed = !self.checks.is_empty() && self.checks.iter().all(|c| c.passed);
        self
    }
}

/// `--workload`: what ran in the guest through the migrations, as it was
/// last seen (after the last migration, where the guest then was).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkloadReport {
    pub command: String,
    /// `--workload-check`, run after each migration.
    pub check: Option<String>,
    /// Its process in the guest.
    pub pid: u32,
    /// That process's start time (clock ticks after boot, `/proc/PID/stat`).
    pub start_time: Option<u64>,
    /// Its exit status, once it exited; `null`: it still ran.
    pub exit_status: Option<i32>,
    /// How much it wrote (stdout and stderr).
    pub output_bytes: Option<u64>,
    /// The end of what it wrote.
    pub output_tail: String,
    /// Why the last look at it failed, if it did.
    pub error: Option<String>,
}

impl WorkloadReport {
    fn render(&self, s: &mut String) {
        let state = match (self.exit_status, &self.error) {
            (Some(st), _) => format!("exited with status {st}"),
            (None, Some(e)) => format!("not seen at the end: {e}"),
            (None, None) => "still running".to_string(),
        };
        let _ = writeln!(
            s,
            "
workload: `{}` (pid {}), {state}",
            self.command, self.pid
        );
        if let Some(c) = &self.check {
            let _ = writeln!(s, "  checked after each migration with `{c}`");
        }
        let size = self
            .output_bytes
            .map_or(String::new(), |n| format!(" of {n} bytes"));
        let _ = writeln!(
            s,
            "  output (the last {} bytes{size}):",
            self.output_tail.len()
        );
        for l in self.output_tail.lines() {
            let _ = writeln!(s, "    | {l}");
        }
    }
}

/// The options the run was made with, echoed in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunOptions {
    pub repeat: u32,
    pub dirty_mb: Option<u32>,
    pub stop_first: bool,
    /// The probe-gap limit; `None` (JSON `null`): `--threshold-ms off`, the
    /// gap is reported, not judged.
    pub threshold_ms: Option<u64>,
}

/// A whole migration-check run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backend: String,
    pub guest: String,
    pub image_dir: PathBuf,
    /// e.g. `QEMU 10.0.2 (tcg)` or `xl 4.17.5`.
    pub hypervisor: String,
    /// Every host of the route, as its hypervisor describes itself.
    pub hosts: Vec<HostReport>,
    pub options: RunOptions,
    /// From start to the guest's first answer (namespace, boot).
    pub setup_ms: u64,
    /// From starting the guest (QEMU: spawning its QEMU) to its first answer.
    pub boot_ms: u64,
    /// End to end, teardown included.
    pub total_ms: u64,
    pub migrations: Vec<MigrationReport>,
    pub guest_location: GuestLocation,
    pub console_logs: Vec<PathBuf>,
    /// `--workload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadReport>,
    /// Set when the run stopped early on an error (the checks run so far are kept).
    pub error: Option<String>,
    pub passed: bool,
}

impl Report {
    /// Recomputes `passed`: every requested migration ran, every check passed, no error.
    pub fn finish(&mut self) {
        self.passed = self.error.is_none()
            && self.migrations.len() == self.options.repeat as usize
            && self.migrations.iter().all(|m| m.passed);
    }

    /// 0 only if everything passed.
    pub fn exit_code(&self) -> i32 {
        if self.passed { 0 } else { 1 }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A plain-text table for people.
    pub fn render_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "migration check: guest {} ({}), {} backend, {}",
            self.guest,
            self.image_dir.display(),
            self.backend,
            self.hypervisor
        );
        for h in &self.hosts {
            let _ = writeln!(s, "host {}: {}", h.name, h.caps.summary());
            if let Some(st) = &h.storage {
                let _ = writeln!(
                    s,
                    "  storage: {} = {}, {} bytes",
                    st.target, st.device, st.size_bytes
                );
            }
        }
        for m in &self.migrations {
            let _ = writeln!(s, "\nmigration {}: {} -> {}", m.index, m.from, m.to);
            if let Some(st) = &m.stats {
                let f = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                let _ = writeln!(
                    s,
                    "  status {}, total-time {} ms, downtime {} ms, setup-time {} ms, transferred {} bytes",
                    st.status,
                    f(st.total_time_ms),
                    f(st.downtime_ms),
                    f(st.setup_time_ms),
                    f(st.transferred_bytes)
                );
            }
            if let Some(p) = &m.probe {
                let _ = writeln!(
                    s,
                    "  probe: longest gap {:.1} ms, {}/{} answered every {:.0} ms, {} duplicates",
                    p.longest_gap_ms, p.answered, p.sent, p.interval_ms, p.duplicates
                );
                if let Some(e) = &p.icmp {
                    let _ = writeln!(
                        s,
                        "  icmp echo (the guest's kernel): longest gap {:.1} ms, {}/{} answered",
                        e.longest_gap_ms, e.answered, e.sent
                    );
                }
            }
            let width = m.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for c in &m.checks {
                let _ = writeln!(s, "  {:<4}  {:<width$}  {}", c.verdict(), c.name, c.detail);
            }
            if let Some(t) = &m.console_tail {
                let _ = writeln!(s, "  console tail (source):");
                for l in t.lines() {
                    let _ = writeln!(s, "    | {l}");
                }
            }
            let _ = writeln!(s, "  guest is on the {}", location_text(m.guest_location));
        }
        if self.migrations.len() > 1 {
            s.push_str(&self.hop_table());
        }
        if let Some(w) = &self.workload {
            w.render(&mut s);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "\nerror: {e}");
        }
        let _ = writeln!(s, "\nconsole logs:");
        for l in &self.console_logs {
            let _ = writeln!(s, "  {}", l.display());
        }
        let _ = writeln!(
            s,
            "\nboot {} ms, setup {} ms, total {} ms; guest now on the {}",
            self.boot_ms,
            self.setup_ms,
            self.total_ms,
            location_text(self.guest_location)
        );
        let _ = writeln!(s, "RESULT: {}", if self.passed { "PASS" } else { "FAIL" });
        s
    }
}

impl Report {
    /// One line per migration: the route walked, each hop's verdict and
    /// figures (the hypervisor's downtime, the client-seen gap).
    fn hop_table(&self) -> String {
        let f = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        let rows: Vec<[String; 6]> = self
            .migrations
            .iter()
            .map(|m| {
                [
                    m.index.to_string(),
                    format!("{} -> {}", m.from, m.to),
                    if m.passed { "PASS" } else { "FAIL" }.to_string(),
                    f(m.stats.as_ref().and_then(|s| s.downtime_ms)),
                    m.probe
                        .as_ref()
                        .map_or("-".into(), |p| format!("{:.1} ms", p.longest_gap_ms)),
                    format!("{} ms", m.elapsed_ms),
                ]
            })
            .collect();
        let head =
            ["hop", "route", "result", "downtime", "probe gap", "elapsed"].map(str::to_string);
        let mut width = head.clone().map(|h| h.len());
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let mut s = String::from("\nhops:\n");
        for r in std::iter::once(&head).chain(&rows) {
            let cells: Vec<String> = r
                .iter()
                .zip(width)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(s, "  {}", cells.join("  ").trim_end());
        }
        s
    }
}

fn location_text(l: GuestLocation) -> &'static str {
    match l {
        GuestLocation::Source => "source (migration did not complete; guest kept running there)",
        GuestLocation::Destination => "destination",
        GuestLocation::Lost => "neither host: the guest was lost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>, repeat: u32) -> Report {
        let m = MigrationReport {
            index: 1,
            from: "qemu-a".into(),
            to: "qemu-b".into(),
            stats: Some(MigrationStats {
                status: "completed".into(),
                total_time_ms: Some(812),
                downtime_ms: Some(14),
                setup_time_ms: Some(3),
                transferred_bytes: Some(123_456),
            }),
            probe: None,
            checks,
            guest_location: GuestLocation::Destination,
            elapsed_ms: 900,
            console_tail: None,
            passed: false,
        }
        .seal();
        let mut r = Report {
            backend: "qemu".into(),
            guest: "busybox".into(),
            image_dir: "out/busybox".into(),
            hypervisor: "QEMU 10.0.2 (tcg)".into(),
            hosts: vec![],
            options: RunOptions {
                repeat,
                threshold_ms: Some(1000),
                ..RunOptions::default()
            },
            setup_ms: 2500,
            boot_ms: 2000,
            total_ms: 7000,
            migrations: vec![m],
            guest_location: GuestLocation::Destination,
            console_logs: vec!["/tmp/a.log".into()],
            workload: None,
            error: None,
            passed: false,
        };
        r.finish();
        r
    }

    #[test]
    fn the_workload_is_in_the_table_and_the_json() {
        let mut r = report(vec![Check::new("workload-running", true, "x")], 1);
        assert!(!r.to_json().contains("\"workload\""));
        r.workload = Some(WorkloadReport {
            command: "while :; do date; sleep 1; done".into(),
            check: Some("test -s /tmp/w".into()),
            pid: 93,
            start_time: Some(412),
            exit_status: None,
            output_bytes: Some(5000),
            output_tail: "Mon\nTue\n".into(),
            error: None,
        });
        let t = r.render_table();
        assert!(
            t.contains(
                "\nworkload: `while :; do date; sleep 1; done` (pid 93), still running\n  checked after each migration with `test -s /tmp/w`\n  output (the last 8 bytes of 5000 bytes):\n    | Mon\n    | Tue\n"
            ),
            "{t}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["workload"]["pid"], 93);
        assert_eq!(v["workload"]["exit_status"], serde_json::Value::Null);
        assert_eq!(v["workload"]["output_tail"], "Mon\nTue\n");
    }

    #[test]
    fn passes_only_when_every_check_passes() {
        let ok = report(vec![Check::new("same-ip", true, "x")], 1);
        assert!(ok.passed);
        assert_eq!(ok.exit_code(), 0);
        let bad = report(
            vec![
                Check::new("same-ip", true, "x"),
                Check::new("same-boot", false, "y"),
            ],
            1,
        );
        assert_eq!(bad.exit_code(), 1);
        assert!(bad.render_table().contains("FAIL  same-boot  y"));
        assert!(bad.render_table().ends_with("RESULT: FAIL\n"));
    }

    #[test]
    fn missing_legs_or_errors_fail() {
        assert!(!report(vec![Check::new("same-ip", true, "x")], 2).passed);
        let mut r = report(vec![Check::new("same-ip", true, "x")], 1);
        r.error = Some("boom".into());
        r.finish();
        assert!(!r.passed);
        assert!(!report(vec![], 1).passed);
    }

    #[test]
    fn an_informational_check_shows_and_never_fails() {
        let r = report(
            vec![
                Check::new("same-ip", true, "x"),
                Check::info("probe-gap", "longest gap 15250.0 ms (not limited)"),
            ],
            1,
        );
        assert!(r.passed);
        assert!(
            r.render_table()
                .contains("INFO  probe-gap  longest gap 15250.0 ms (not limited)"),
            "{}",
            r.render_table()
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let c = &v["migrations"][0]["checks"][1];
        assert_eq!(
            (c["passed"].clone(), c["informational"].clone()),
            (true.into(), true.into())
        );
        assert_eq!(v["migrations"][0]["checks"][0]["informational"], false);
    }

    #[test]
    fn several_hops_end_with_a_table_of_them() {
        let pass = Check {
            name: "same-ip".into(),
            passed: true,
            informational: false,
            detail: String::new(),
        };
        let mut r = report(vec![pass.clone()], 2);
        assert!(
            !r.render_table().contains("hops:"),
            "one migration, no table"
        );
        let mut second = r.migrations[0].clone();
        second.index = 2;
        second.from = "qemu-b".into();
        second.to = "qemu-a".into();
        second.checks = vec![Check {
            passed: false,
            ..pass
        }];
        second.stats = None;
        r.migrations.push(second.seal());
        r.finish();
        let t = r.render_table();
        let table: Vec<&str> = t
            .split("\nhops:\n")
            .nth(1)
            .expect("a hop table")
            .lines()
            .take(3)
            .collect();
        assert_eq!(
            table,
            [
                "  hop  route             result  downtime  probe gap  elapsed",
                "  1    qemu-a -> qemu-b  PASS    14 ms     -          900 ms",
                "  2    qemu-b -> qemu-a  FAIL    -         -          900 ms",
            ],
            "{t}"
        );
    }

    #[test]
    fn hosts_show_their_hypervisor() {
        let mut r = report(vec![Check::new("same-ip", true, "x")], 1);
        r.hosts = vec![HostReport {
            name: "root@h2".into(),
            caps: HostCaps::parse(crate::xen::caps::fixtures::DEBIAN_4_17_7_SVM),
            storage: Some(HostStorage {
                storage: "iscsi iqn.2026-12.org.imgbuild:busybox at 10.99.0.1:3260, LUN 1".into(),
                target: "/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-lun-1".into(),
                device: "/dev/sdb".into(),
                size_bytes: 1 << 30,
                attached_by_run: true,
            }),
        }];
        assert!(
            r.render_table().contains(
                "host root@h2: Xen 4.17.7, virt_caps pv hvm hap gnttab-v1 gnttab-v2, built Wed Nov  4 16:52:28 UTC 2026"
            ),
            "{}",
            r.render_table()
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["hosts"][0]["name"], "root@h2");
        assert_eq!(v["hosts"][0]["xen_version"], "4.17.7");
        assert_eq!(v["hosts"][0]["virt_caps"][1], "hvm");
        assert_eq!(v["hosts"][0]["storage"]["device"], "/dev/sdb");
        assert_eq!(v["hosts"][0]["storage"]["size_bytes"], 1u64 << 30);
        assert!(r.render_table().contains(
            "  storage: /dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-lun-1 = /dev/sdb, 1073741824 bytes\n"
        ));
        assert_eq!(v["options"]["threshold_ms"], 1000);
    }

    #[test]
    fn json_has_the_figures_ci_reads() {
        let r = report(vec![Check::new("same-ip", true, "x")], 1);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["passed"], true);
        assert_eq!(v["migrations"][0]["stats"]["downtime_ms"], 14);
        assert_eq!(v["migrations"][0]["stats"]["transferred_bytes"], 123_456);
        assert_eq!(v["migrations"][0]["checks"][0]["name"], "same-ip");
        assert_eq!(v["guest_location"], "destination");
        assert_eq!(v["console_logs"][0], "/tmp/a.log");
    }
}

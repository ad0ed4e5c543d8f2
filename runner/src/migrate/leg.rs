//! One migration (one leg of `--repeat`): migrate, poll, check.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Event;
use super::MigrateError;
use super::run::{Run, qmp_err};
use crate::cancel::Interrupted;
use crate::checks::{self, Check, Evidence, Snapshot, names};
use crate::netns::NetNs;
use crate::probe::Probe;
use crate::qmp::{MigrateInfo, QmpError};
use crate::report::{GuestLocation, MigrationReport, MigrationStats};
use crate::session::Vm;
use crate::status::TcpSession;

/// How one migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Completed,
    Failed,
}

impl Run<'_> {
    /// Migrates the guest from `src` to `dst` and checks it. Errors are
    /// only returned when the run must stop (interrupted, QMP broken).
    pub(super) fn migrate_once(
        &mut self,
        ns: &NetNs,
        index: u32,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        let uri = self.uri(index);
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
            .migrate_set_parameters(
                json!({
                    "max-bandwidth": self.o.max_bandwidth_mib.saturating_mul(1024 * 1024),
                    "downtime-limit": u64::try_from(self.o.downtime_limit.as_millis()).unwrap_or(u64::MAX),
                }),
            )
            .map_err(qmp_err(src))?;
        let before = Snapshot::from(&self.guest.ask(Duration::from_secs(5))?);
        let probe = Probe::start(
            Self::probe_socket(ns)?,
            self.guest.target(),
            Duration::from_millis(10),
        )
        .map_err(MigrateError::Socket)?;
        if self.o.stop_first {
            src.qmp.stop().map_err(qmp_err(src))?;
        }
        (self.progress)(&Event::MigrationStarted {
            index,
            from: src.name().to_string(),
            to: dst.name().to_string(),
        });
        let started = Instant::now();
        let (info, failure) = match src.qmp.migrate(&uri) {
            Err(QmpError::Command { class, desc, .. }) => {
                (MigrateInfo::default(), Some(format!("{class}: {desc}")))
            }
            Err(e) => return Err(qmp_err(src)(e)),
            Ok(()) => self.poll_migration(src)?,
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = info.status.clone().unwrap_or_else(|| "failed".into());
        (self.progress)(&Event::MigrationEnded {
            index,
            status: status.clone(),
            ms: elapsed_ms,
        });
        let stats = MigrationStats {
            status: status.clone(),
            total_time_ms: info.total_time,
            downtime_ms: info.downtime,
            setup_time_ms: info.setup_time,
            transferred_bytes: info.ram.as_ref().map(|r| r.transferred),
        };
        let base = MigrationReport {
            index,
            from: src.name().to_string(),
            to: dst.name().to_string(),
            stats: Some(stats),
            probe: None,
            checks: Vec::new(),
            guest_location: GuestLocation::Lost,
            elapsed_ms,
            passed: false,
        };
        match failure {
            None => self.after_success(src, dst, tcp, probe, before, base, index),
            Some(why) => self.after_failure(src, dst, tcp, probe, before, base, &why),
        }
    }

    /// Polls `query-migrate` on the source until the migration ends.
    /// Returns the final info and, when it did not complete, why.
    fn poll_migration(
        &mut self,
        src: &mut Vm,
    ) -> Result<(MigrateInfo, Option<String>), MigrateError> {
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
                if self.cancel.is_set() {
                    let _ = src.qmp.migrate_cancel();
                    return Err(Interrupted.into());
                }
                if started.elapsed() > self.o.migrate_timeout {
                    src.qmp.migrate_cancel().map_err(qmp_err(src))?;
                    cancelled_for = Some(format!(
                        "did not complete within {} s; cancelled",
                        self.o.migrate_timeout.as_secs()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one migration"
    )]
    fn after_success(
        &mut self,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
        probe: Probe,
        before: Snapshot,
        mut rep: MigrationReport,
        index: u32,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        // The source reports completion before the destination has loaded
        // the last state; wait for it to leave `inmigrate`.
        let loaded = Instant::now();
        while loaded.elapsed() < Duration::from_secs(10) {
            self.cancel.check()?;
            match dst.qmp.query_status() {
                Ok(s) if s.status == "inmigrate" => std::thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
        if self.o.stop_first {
            dst.qmp.cont().map_err(qmp_err(dst))?;
        }
        let after = self.guest.snapshot(Duration::from_secs(5));
        // The probe measures the migration, not the checks that follow.
        let probe = probe.finish();
        let (tcp_after, dirty) = tcp.after_migration(self.o.dirty_mb.is_some());
        let states = vm_states(src, dst);
        (self.progress)(&Event::Rechecking {
            index,
            secs: self.o.settle.as_secs_f64(),
        });
        self.cancel.sleep(self.o.settle)?;
        let late = match dst.process.exited() {
            Some(st) => Err(format!(
                "destination QEMU exited ({st}): {}",
                dst.process.died(st)
            )),
            None => match dst.qmp.query_status() {
                Ok(s) if s.status == "running" => self.guest.snapshot(Duration::from_secs(3)),
                Ok(s) => Err(format!("destination VM is {}", s.status)),
                Err(e) => Err(e.to_string()),
            },
        };
        let location = if late.is_ok() {
            GuestLocation::Destination
        } else {
            GuestLocation::Lost
        };
        let evidence = Evidence {
            address: self.m.guest.address,
            prefix: self.m.guest.prefix,
            mac: self.m.guest.mac.clone(),
            before,
            after,
            tcp_after,
            late: Some(late),
            probe: Some(probe.clone()),
            threshold: (!self.o.stop_first).then_some(self.o.threshold),
            dirty,
        };
        let mut checks = vec![
            Check::new(names::MIGRATION_COMPLETED, true, "query-migrate: completed"),
            states,
        ];
        checks.extend(checks::guest_checks(&evidence));
        rep.probe = Some(probe);
        rep.checks = checks;
        rep.guest_location = location;
        Ok((rep.seal(), Outcome::Completed))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one migration"
    )]
    fn after_failure(
        &mut self,
        src: &mut Vm,
        dst: &mut Vm,
        tcp: &mut TcpSession,
        probe: Probe,
        before: Snapshot,
        mut rep: MigrationReport,
        why: &str,
    ) -> Result<(MigrationReport, Outcome), MigrateError> {
        let dst_note = match dst.process.exited() {
            Some(st) => format!("; destination QEMU exited ({st})"),
            None => String::new(),
        };
        if self.o.stop_first {
            src.qmp.cont().map_err(qmp_err(src))?;
        }
        let src_state = src
            .qmp
            .query_status()
            .map(|s| s.status)
            .unwrap_or_else(|e| e.to_string());
        let on_src = self.guest.snapshot(Duration::from_secs(5));
        let probe = probe.finish();
        let (ok, detail) = match &on_src {
            Ok(s) if s.boot_id == before.boot_id && src_state == "running" => (
                true,
                format!(
                    "source VM {src_state}, guest answers, same boot {}",
                    s.boot_id
                ),
            ),
            Ok(s) => (
                false,
                format!(
                    "source VM {src_state}, guest answers with boot {} (before {})",
                    s.boot_id, before.boot_id
                ),
            ),
            Err(e) => (
                false,
                format!("source VM {src_state}; guest does not answer: {e}"),
            ),
        };
        rep.checks = vec![
            Check::new(
                names::MIGRATION_COMPLETED,
                false,
                format!("migration failed: {why}{dst_note}"),
            ),
            Check::new(names::GUEST_ON_SOURCE, ok, detail),
        ];
        if ok && self.o.dirty_mb.is_some() {
            // The source resumed: its memory must be intact too.
            rep.checks.push(checks::memory_intact(
                &tcp.dirty_check().map_err(|e| e.to_string()),
            ));
        }
        rep.probe = Some(probe);
        rep.guest_location = if ok {
            GuestLocation::Source
        } else {
            GuestLocation::Lost
        };
        Ok((rep.seal(), Outcome::Failed))
    }
}

/// QEMU-specific: destination `running`, source `postmigrate`.
fn vm_states(src: &mut Vm, dst: &mut Vm) -> Check {
    let s = |vm: &mut Vm| {
        vm.qmp
            .query_status()
            .map(|s| s.status)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    };
    let (d, sr) = (s(dst), s(src));
    Check::new(
        names::VM_STATES,
        d == "running" && sr == "postmigrate",
        format!("destination {d}, source {sr}"),
    )
}

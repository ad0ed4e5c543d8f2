//! One leg of the check: snapshot the guest, probe it while the backend
//! migrates it, gather the evidence, run the checks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use guest_contract::manifest::GuestNet;

use super::{Backend, BackendError, CheckError, CheckOptions, Event, Leg, Outcome, Placement};
use crate::cancel::Cancel;
use crate::checks::{self, Check, Evidence, Snapshot, names};
use crate::probe::{Probe, ProbeSummary};
use crate::report::{GuestLocation, MigrationReport};
use crate::status::{GuestClient, TcpSession};
use crate::workload::Workload;

/// What one leg works with; the driver lends it for the run.
pub(super) struct LegRun<'a> {
    pub(super) backend: &'a mut dyn Backend,
    pub(super) guest: &'a mut GuestClient,
    pub(super) tcp: &'a mut TcpSession,
    pub(super) net: GuestNet,
    pub(super) target: SocketAddr,
    pub(super) o: &'a CheckOptions,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a mut dyn FnMut(&Event),
    /// `--workload`: checked after each leg, where the guest then is.
    pub(super) workload: Option<&'a mut Workload>,
}

impl LegRun<'_> {
    /// Migrates along `leg` and checks the guest. `Err` only when the run
    /// must stop (interrupted, or the backend could not migrate at all).
    pub(super) fn one(&mut self, leg: &Leg) -> Result<MigrationReport, CheckError> {
        self.backend.prepare(leg, self.progress)?;
        let before = Snapshot::from(&self.guest.ask(Duration::from_secs(5))?);
        let probe = Probe::start(
            self.backend.udp_socket().map_err(CheckError::Socket)?,
            // Without CAP_NET_RAW there is no echo beside the probe.
            self.backend.icmp_socket().ok(),
            self.target,
            Duration::from_millis(10),
        )
        .map_err(CheckError::Socket)?;
        let (from, to) = (
            self.backend.host_name(leg.from),
            self.backend.host_name(leg.to),
        );
        (self.progress)(&Event::MigrationStarted {
            index: leg.index,
            from: from.clone(),
            to: to.clone(),
        });
        let outcome = match self.backend.migrate(leg, self.o) {
            Ok(o) => o,
            Err(e) => {
                let _ = probe.finish();
                return Err(e.into());
            }
        };
        (self.progress)(&Event::MigrationEnded {
            index: leg.index,
            status: outcome.stats.status.clone(),
            ms: outcome.elapsed_ms,
        });
        let rep = MigrationReport {
            index: leg.index,
            from,
            to,
            stats: Some(outcome.stats.clone()),
            probe: None,
            checks: Vec::new(),
            guest_location: GuestLocation::Lost,
            elapsed_ms: outcome.elapsed_ms,
            console_tail: None,
            passed: false,
        };
        let mut rep = if outcome.completed {
            self.completed(leg, &outcome, before, probe, rep)?
        } else {
            self.failed(leg, &outcome, &before, probe, rep)?
        };
        // After the guest's own checks (and the probe), where it now is.
        if let Some(w) = self.workload.as_deref_mut() {
            let host = leg.host_of(rep.guest_location);
            rep.checks
                .extend(w.after_leg(self.backend, host, self.cancel)?);
        }
        if let Some(h) = &self.o.host_check {
            let r = h.run(&*self.backend, self.net.address.addr(), self.cancel)?;
            rep.checks.push(checks::workload::host_check(&r));
        }
        self.backend.end_leg(leg, outcome.completed);
        Ok(rep.seal())
    }

    /// The guest's status as a check input: the snapshot, or why there is none.
    fn snapshot(&mut self, within: Duration) -> Result<Snapshot, String> {
        self.guest
            .ask(within)
            .map(|s| Snapshot::from(&s))
            .map_err(|e| e.to_string())
    }

    /// The backend's view; a failure to get it is a guest not found.
    fn locate(&mut self, leg: &Leg) -> Result<Placement, CheckError> {
        match self.backend.locate(leg) {
            Ok(p) => Ok(p),
            Err(BackendError::Interrupted(i)) => Err(i.into()),
            Err(e) => Ok(Placement {
                location: GuestLocation::Lost,
                states_ok: false,
                detail: format!("cannot tell where the guest is: {e}"),
            }),
        }
    }

    fn completed(
        &mut self,
        leg: &Leg,
        outcome: &Outcome,
        before: Snapshot,
        probe: Probe,
        mut rep: MigrationReport,
    ) -> Result<MigrationReport, CheckError> {
        // The deadline of the guest's first answer after the migration: what
        // `answered-again` asserts whatever the probe gap was.
        let after_deadline = self.backend.answer_timeout();
        let asked = Instant::now();
        probe.wait_for_answers(3, after_deadline);
        let after = self.snapshot(after_deadline.saturating_sub(asked.elapsed()));
        let after_took = asked.elapsed();
        // The probe measures the migration, not the checks that follow.
        let probe = probe.finish();
        let tcp_after = self
            .tcp
            .status()
            .map(|s| Snapshot::from(&s))
            .map_err(|e| e.to_string());
        let dirty = self
            .o
            .dirty_mb
            .map(|_| self.tcp.dirty_check().map_err(|e| e.to_string()));
        let place = self.locate(leg)?;
        let late = if place.location == GuestLocation::Destination {
            (self.progress)(&Event::Rechecking {
                index: leg.index,
                secs: self.o.settle.as_secs_f64(),
            });
            self.cancel.sleep(self.o.settle)?;
            let again = self.locate(leg)?;
            Some(if again.location == GuestLocation::Destination {
                self.snapshot(self.backend.answer_timeout())
            } else {
                Err(again.detail)
            })
        } else {
            None
        };
        rep.guest_location = match &late {
            Some(Ok(_)) => GuestLocation::Destination,
            Some(Err(_)) => GuestLocation::Lost,
            None => place.location,
        };
        let evidence = Evidence {
            address: self.net.address,
            mac: self.net.mac,
            before,
            after,
            after_took,
            after_deadline,
            tcp_after,
            late,
            probe: Some(probe.clone()),
            threshold: (!self.o.stop_first).then_some(self.o.threshold),
            dirty,
        };
        rep.checks = vec![
            Check::new(names::MIGRATION_COMPLETED, true, outcome.detail.clone()),
            Check::new(names::VM_STATES, place.states_ok, place.detail),
        ];
        rep.checks.extend(checks::guest_checks(&evidence));
        rep.probe = Some(probe);
        Ok(rep)
    }

    fn failed(
        &mut self,
        leg: &Leg,
        outcome: &Outcome,
        before: &Snapshot,
        probe: Probe,
        mut rep: MigrationReport,
    ) -> Result<MigrationReport, CheckError> {
        let place = self.locate(leg)?;
        let on_src = self.snapshot(Duration::from_secs(5));
        let probe: ProbeSummary = probe.finish();
        let on_source = place.location == GuestLocation::Source;
        let (ok, detail) = match &on_src {
            Ok(s) if s.boot_id == before.boot_id && on_source => (
                true,
                format!("{}; guest answers, same boot {}", place.detail, s.boot_id),
            ),
            Ok(s) => (
                false,
                format!(
                    "{}; guest answers with boot {} (before {})",
                    place.detail, s.boot_id, before.boot_id
                ),
            ),
            Err(e) => (
                false,
                format!("{}; guest does not answer: {e}", place.detail),
            ),
        };
        rep.checks = vec![
            Check::new(names::MIGRATION_COMPLETED, false, outcome.detail.clone()),
            Check::new(names::GUEST_ON_SOURCE, ok, detail),
        ];
        if ok && self.o.dirty_mb.is_some() {
            // The source resumed: its memory must be intact too.
            rep.checks.push(checks::memory_intact(
                &self.tcp.dirty_check().map_err(|e| e.to_string()),
            ));
        }
        rep.guest_location = match (ok, place.location) {
            (true, _) => GuestLocation::Source,
            (false, GuestLocation::Source) => GuestLocation::Lost,
            (false, other) => other,
        };
        rep.console_tail = Some(self.backend.console_tail(leg.from));
        rep.probe = Some(probe);
        Ok(rep)
    }
}

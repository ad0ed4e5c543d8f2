//! The checks of `--workload` and `--workload-check` after a migration,
//! over what the guest said ([`WorkloadEvidence`]), and of `--host-check`.

use super::{Check, names};
use crate::workload::state::Observed;

/// The workload's process as recorded when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadStart {
    pub pid: u32,
    /// `None`: it had already exited when asked.
    pub start_time: Option<u64>,
}

/// What was found after one migration.
#[derive(Debug, Clone)]
pub struct WorkloadEvidence {
    pub started: WorkloadStart,
    /// What the guest said, or why it could not be asked.
    pub now: Result<Observed, String>,
    /// `--workload-check`: its exit status and the end of its output, or
    /// why it could not run; `None` without one.
    pub check: Option<Result<(i32, String), String>>,
}

/// While the workload runs: it is the process it was (`workload-running`);
/// once it exited: its status is 0 (`workload-exit`). Then
/// `workload-check`, if there is one.
pub fn workload_checks(e: &WorkloadEvidence) -> Vec<Check> {
    let mut v = vec![workload_state(e)];
    if let Some(c) = &e.check {
        v.push(match c {
            Ok((0, out)) => Check::new(names::WORKLOAD_CHECK, true, with_output("exit 0", out)),
            Ok((code, out)) => Check::new(
                names::WORKLOAD_CHECK,
                false,
                with_output(&format!("exit {code}"), out),
            ),
            Err(why) => Check::new(names::WORKLOAD_CHECK, false, format!("did not run: {why}")),
        });
    }
    v
}

/// `--host-check`: its exit status (0 passes) and the end of its output,
/// or why it did not finish.
pub fn host_check(r: &Result<(i32, String), String>) -> Check {
    match r {
        Ok((code, out)) => Check::new(
            names::HOST_CHECK,
            *code == 0,
            with_output(&format!("exit {code}"), out),
        ),
        Err(why) => Check::new(names::HOST_CHECK, false, why.clone()),
    }
}

fn with_output(head: &str, out: &str) -> String {
    let out = out.trim();
    if out.is_empty() {
        head.to_string()
    } else {
        format!("{head}; output: {}", out.replace('\n', " | "))
    }
}

fn workload_state(e: &WorkloadEvidence) -> Check {
    let running = |ok, detail: String| Check::new(names::WORKLOAD_RUNNING, ok, detail);
    let pid = e.started.pid;
    let now = match &e.now {
        Ok(o) => o,
        Err(why) => return running(false, format!("cannot ask the guest: {why}")),
    };
    if let Some(status) = now.status {
        return Check::new(
            names::WORKLOAD_EXIT,
            status == 0,
            format!("pid {pid} exited with status {status}"),
        );
    }
    match (now.pid, &now.stat, e.started.start_time) {
        (None, _, _) => running(
            false,
            "the guest has no record of the workload (its /run is not the one the workload started in: rebooted?)".into(),
        ),
        (Some(p), _, _) if p != pid => running(
            false,
            format!("the guest's record names pid {p}, not {pid}: restarted"),
        ),
        (Some(_), Some(s), Some(t)) if s.is_alive() && s.start_time == t => running(
            true,
            format!("pid {pid} still running (state {}), same start time", s.state),
        ),
        (Some(_), Some(s), Some(t)) if s.is_alive() => running(
            false,
            format!(
                "pid {pid} is another process now (started at tick {}, the workload at {t}): the workload was replaced",
                s.start_time
            ),
        ),
        (Some(_), _, _) => running(
            false,
            format!("pid {pid} is gone and left no exit status: killed"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::state::ProcStat;

    fn observed(pid: Option<u32>, stat: Option<(char, u64)>, status: Option<i32>) -> Observed {
        Observed {
            pid,
            stat: stat.map(|(state, start_time)| ProcStat { state, start_time }),
            status,
        }
    }

    fn evidence(now: Result<Observed, String>) -> WorkloadEvidence {
        WorkloadEvidence {
            started: WorkloadStart {
                pid: 90,
                start_time: Some(300),
            },
            now,
            check: None,
        }
    }

    #[test]
    fn the_workloads_state_after_a_migration() {
        // (what the guest said, the check's name, passed, in the detail)
        let table: [(Result<Observed, String>, &str, bool, &str); 8] = [
            (
                Ok(observed(Some(90), Some(('S', 300)), None)),
                "workload-running",
                true,
                "pid 90 still running (state S)",
            ),
            (
                Ok(observed(Some(90), Some(('R', 300)), None)),
                "workload-running",
                true,
                "same start time",
            ),
            (
                Ok(observed(Some(90), Some(('S', 999)), None)),
                "workload-running",
                false,
                "another process now (started at tick 999, the workload at 300)",
            ),
            (
                Ok(observed(Some(90), Some(('Z', 300)), None)),
                "workload-running",
                false,
                "gone and left no exit status",
            ),
            (
                Ok(observed(Some(90), None, None)),
                "workload-running",
                false,
                "gone",
            ),
            (
                Ok(observed(Some(91), Some(('S', 300)), None)),
                "workload-running",
                false,
                "names pid 91, not 90",
            ),
            (
                Ok(observed(None, None, None)),
                "workload-running",
                false,
                "no record",
            ),
            (
                Err("the console closed".into()),
                "workload-running",
                false,
                "cannot ask the guest: the console closed",
            ),
        ];
        for (now, name, passed, detail) in table {
            let v = workload_checks(&evidence(now.clone()));
            assert_eq!(v.len(), 1, "{now:?}");
            assert_eq!(
                (v[0].name.as_str(), v[0].passed),
                (name, passed),
                "{now:?}: {v:?}"
            );
            assert!(v[0].detail.contains(detail), "{now:?}: {}", v[0].detail);
        }
    }

    #[test]
    fn an_exited_workload_is_judged_by_its_status() {
        for (status, passed) in [(0, true), (3, false), (143, false)] {
            let v = workload_checks(&evidence(Ok(observed(Some(90), None, Some(status)))));
            assert_eq!(v[0].name, "workload-exit");
            assert_eq!(v[0].passed, passed, "{status}");
            assert_eq!(v[0].detail, format!("pid 90 exited with status {status}"));
        }
    }

    #[test]
    fn the_host_check_counts_by_its_exit_status() {
        let c = host_check(&Ok((0, "<html>hi</html>\n".into())));
        assert_eq!((c.name.as_str(), c.passed), ("host-check", true));
        assert_eq!(c.detail, "exit 0; output: <html>hi</html>");
        assert!(!host_check(&Ok((4, String::new()))).passed);
        let c = host_check(&Err("did not finish within 60 s (killed)".into()));
        assert!(!c.passed && c.detail.contains("killed"));
    }

    #[test]
    fn the_check_command_counts_by_its_exit_status() {
        let mut e = evidence(Ok(observed(Some(90), Some(('S', 300)), None)));
        for (check, passed, detail) in [
            (
                Ok((0, "hello\n".to_string())),
                true,
                "exit 0; output: hello",
            ),
            (Ok((0, String::new())), true, "exit 0"),
            (
                Ok((1, "a\nb\n".to_string())),
                false,
                "exit 1; output: a | b",
            ),
            (Err("no shell".to_string()), false, "did not run: no shell"),
        ] {
            e.check = Some(check);
            let v = workload_checks(&e);
            assert_eq!(v.len(), 2);
            assert_eq!(
                (v[1].name.as_str(), v[1].passed, v[1].detail.as_str()),
                ("workload-check", passed, detail)
            );
        }
    }
}

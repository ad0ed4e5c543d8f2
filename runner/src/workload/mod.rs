//! `migrate-check --workload 'CMD'`: the user's workload in the guest
//! through every migration. Before the first migration it is started in
//! the background by the console shell ([`script::start`]), its PID and
//! that process's start time recorded; after each migration the console of
//! the guest where it now is (the destination's) is asked whether that
//! process still runs ([`script::query`]), `--workload-check 'CMD2'` is
//! run there, and the checks of [`crate::checks::workload`] judge both.
//! At the end the report gets its output's tail.

pub mod script;
pub mod state;

use std::time::Duration;

use crate::cancel::{Cancel, Interrupted};
use crate::checks::Check;
use crate::checks::workload::{WorkloadEvidence, WorkloadStart, workload_checks};
use crate::console::line::{self, LineError};
use crate::console::{ConsoleError, ConsoleSession, LinkError};
use crate::migrate::{Backend, BackendError, Event};
use crate::report::WorkloadReport;
use crate::shell::ShellError;
use state::Observed;

/// How long the console shell may take to answer, and a query to finish.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `--workload-check` may run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of the workload's output the report keeps.
const OUTPUT_TAIL: usize = 4000;
/// How much of the check's output its check's detail keeps.
const CHECK_OUTPUT: usize = 500;

/// The workload and its check as given, checked and turned into the shell
/// code typed into the guest.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    command: String,
    check: Option<String>,
    start: String,
    check_script: Option<String>,
}

impl WorkloadSpec {
    /// Refuses an empty command and one that does not fit on the console's
    /// line ([`line::MAX_LINE`]).
    pub fn new(command: &str, check: Option<&str>) -> Result<WorkloadSpec, LineError> {
        if command.trim().is_empty() {
            return Err(LineError::Empty { what: "--workload" });
        }
        let start = script::start(script::DIR, command);
        line::check_fits(&start, "--workload")?;
        let check_script = check
            .map(|c| line::eval_script(c, "--workload-check"))
            .transpose()?;
        if let Some(c) = &check_script {
            line::check_fits(c, "--workload-check")?;
        }
        Ok(WorkloadSpec {
            command: command.to_string(),
            check: check.map(str::to_string),
            start,
            check_script,
        })
    }
}

/// Why the workload could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("--workload: {0}")]
    Backend(#[from] BackendError),
    #[error("--workload: {0}")]
    Console(#[from] ConsoleError),
    #[error("--workload: the guest did not say which process runs the workload; it printed: {0:?}")]
    NoPid(String),
}

impl WorkloadError {
    /// True if a signal stopped it.
    pub fn interrupted(&self) -> bool {
        matches!(
            self,
            WorkloadError::Backend(BackendError::Interrupted(_))
                | WorkloadError::Console(
                    ConsoleError::Interrupted(_) | ConsoleError::Link(LinkError::Interrupted(_))
                )
        )
    }
}

/// A started workload.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    started: WorkloadStart,
}

/// The console shell of the guest on `host`, answering.
fn shell(
    backend: &mut dyn Backend,
    host: usize,
    cancel: &Cancel,
) -> Result<ConsoleSession, WorkloadError> {
    crate::shell::open(backend, host, ASK_TIMEOUT, cancel).map_err(|e| match e {
        ShellError::Backend(e) => WorkloadError::Backend(e),
        ShellError::Console(e) => WorkloadError::Console(e),
    })
}

/// `Err(Interrupted)` for a signal, else the error as a check's detail.
fn detail(e: WorkloadError) -> Result<String, Interrupted> {
    if e.interrupted() {
        Err(Interrupted)
    } else {
        Ok(e.to_string())
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Workload {
    /// Starts the workload in the guest on `host`.
    pub fn start(
        backend: &mut dyn Backend,
        host: usize,
        spec: &WorkloadSpec,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Workload, WorkloadError> {
        let mut c = shell(backend, host, cancel)?;
        let (_, out) = c.capture(
            &spec.start,
            "starting the workload",
            ASK_TIMEOUT,
            OUTPUT_TAIL,
            cancel,
        )?;
        let text = lossy(&out);
        let o = Observed::parse(&text);
        let pid = o
            .pid
            .ok_or_else(|| WorkloadError::NoPid(text.trim().to_string()))?;
        progress(&Event::Note(format!(
            "workload started on {}: pid {pid}",
            backend.host_name(host)
        )));
        Ok(Workload {
            spec: spec.clone(),
            started: WorkloadStart {
                pid,
                start_time: o.stat.map(|s| s.start_time),
            },
        })
    }

    /// What the guest says about the workload now. A process that is gone
    /// without a status yet is asked about again: its shell writes the
    /// status just after it exits.
    fn query(&self, c: &mut ConsoleSession, cancel: &Cancel) -> Result<Observed, WorkloadError> {
        let ask = |c: &mut ConsoleSession| -> Result<Observed, WorkloadError> {
            let (_, out) = c.capture(
                &script::query(script::DIR),
                "asking about the workload",
                ASK_TIMEOUT,
                OUTPUT_TAIL,
                cancel,
            )?;
            Ok(Observed::parse(&lossy(&out)))
        };
        let o = ask(c)?;
        if o.pid.is_some() && !o.is_running() && o.status.is_none() {
            cancel
                .sleep(Duration::from_millis(500))
                .map_err(ConsoleError::from)?;
            return ask(c);
        }
        Ok(o)
    }

    /// The checks after a migration that left the guest on `host` (`None`:
    /// lost). Only a signal is an error; anything else fails a check.
    pub fn after_leg(
        &mut self,
        backend: &mut dyn Backend,
        host: Option<usize>,
        cancel: &Cancel,
    ) -> Result<Vec<Check>, Interrupted> {
        let (now, check) = match host {
            None => {
                let lost = "the guest was lost".to_string();
                (
                    Err(lost.clone()),
                    self.spec.check_script.as_ref().map(|_| Err(lost)),
                )
            }
            Some(h) => match shell(backend, h, cancel) {
                Err(e) => {
                    let d = detail(e)?;
                    (
                        Err(d.clone()),
                        self.spec.check_script.as_ref().map(|_| Err(d)),
                    )
                }
                Ok(mut c) => {
                    let now = match self.query(&mut c, cancel) {
                        Ok(o) => Ok(o),
                        Err(e) => Err(detail(e)?),
                    };
                    let check = match &self.spec.check_script {
                        None => None,
                        Some(s) => Some(
                            match c.capture(
                                s,
                                "--workload-check",
                                CHECK_TIMEOUT,
                                CHECK_OUTPUT,
                                cancel,
                            ) {
                                Ok((code, out)) => Ok((code, lossy(&out))),
                                Err(e) => Err(detail(e.into())?),
                            },
                        ),
                    };
                    (now, check)
                }
            },
        };
        Ok(workload_checks(&WorkloadEvidence {
            started: self.started,
            now,
            check,
        }))
    }

    /// The report's part: the workload as the guest on `host` sees it at
    /// the end, with its output's tail.
    pub fn finish(
        self,
        backend: &mut dyn Backend,
        host: Option<usize>,
        cancel: &Cancel,
    ) -> Result<WorkloadReport, Interrupted> {
        let mut r = WorkloadReport {
            command: self.spec.command.clone(),
            check: self.spec.check.clone(),
            pid: self.started.pid,
            start_time: self.started.start_time,
            ..WorkloadReport::default()
        };
        let Some(h) = host else {
            r.error = Some("the guest was lost".into());
            return Ok(r);
        };
        let result = shell(backend, h, cancel).and_then(|mut c| {
            let now = self.query(&mut c, cancel)?;
            let (_, out) = c.capture(
                &script::output(script::DIR, OUTPUT_TAIL),
                "reading the workload's output",
                ASK_TIMEOUT,
                OUTPUT_TAIL + 64,
                cancel,
            )?;
            Ok((now, script::parse_output(&out)))
        });
        match result {
            Ok((now, (size, tail))) => {
                r.exit_status = now.status;
                r.output_bytes = size;
                r.output_tail = lossy(&tail);
            }
            Err(e) => r.error = Some(detail(e)?),
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_before_anything_runs() {
        assert!(
            WorkloadSpec::new(
                "httpd -f -p 8080",
                Some("wget -q -O- http://127.0.0.1:8080/")
            )
            .is_ok()
        );
        let e = WorkloadSpec::new(" ", None).unwrap_err();
        assert_eq!(e, LineError::Empty { what: "--workload" });
        let e = WorkloadSpec::new("true", Some("")).unwrap_err();
        assert_eq!(
            e,
            LineError::Empty {
                what: "--workload-check"
            }
        );
        let long = "x".repeat(4000);
        assert!(matches!(
            WorkloadSpec::new(&long, None),
            Err(LineError::TooLong {
                what: "--workload",
                ..
            })
        ));
        assert!(matches!(
            WorkloadSpec::new("true", Some(&long)),
            Err(LineError::TooLong {
                what: "--workload-check",
                ..
            })
        ));
    }
}

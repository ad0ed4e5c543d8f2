//! `imgrun run`: boot the guest, run one command in its console shell
//! ([`crate::console`]), give its output out as it comes, power the guest
//! off, and return the command's exit status. Over any [`Backend`] with a
//! console (QEMU, Xen).
//!
//! Exit codes of `imgrun run`: the command's own (0-255); [`EXIT_TIMEOUT`]
//! when it did not finish within `--timeout` (as `timeout(1)`);
//! [`EXIT_FAILED`] when imgrun itself failed (as `docker run`): the guest
//! did not boot, no shell answered, a usage error; [`EXIT_INTERRUPTED`] on
//! Ctrl-C or SIGTERM.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::console::ConsoleError;
use crate::migrate::{Backend, BackendError, Event};
use crate::shell::{self, ShellError};

/// The command did not finish within `--timeout`.
pub const EXIT_TIMEOUT: u8 = 124;
/// imgrun failed (not the command).
pub const EXIT_FAILED: u8 = 125;
/// Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long the guest may take to power itself off after the command.
const POWEROFF_GRACE: Duration = Duration::from_secs(15);
/// How long an interrupted command (`^C`, with `--keep`) may take to end.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The command as shell code ([`crate::console::line::argv_script`]).
    pub script: String,
    /// Stop waiting for the command after this long.
    pub timeout: Option<Duration>,
    /// Leave the guest running afterwards.
    pub keep: bool,
    /// How long the guest may take to boot to its console shell.
    pub boot_timeout: Duration,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// With this exit status.
    Exited(i32),
    /// It was still running after `--timeout`.
    TimedOut { secs: u64 },
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub end: RunEnd,
    /// With `--keep`: how to reach the guest and stop it, a line each.
    pub kept: Option<Vec<String>>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// Ctrl-C or SIGTERM; with `--keep` the command was interrupted and the
    /// guest kept.
    #[error("interrupted by a signal; {}", if kept.is_some() { "the command was interrupted, the guest kept" } else { "cleaned up" })]
    Interrupted { kept: Option<Vec<String>> },
}

impl RunError {
    /// `imgrun run`'s exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Interrupted { .. } | RunError::Backend(BackendError::Interrupted(_)) => {
                EXIT_INTERRUPTED
            }
            RunError::Console(ConsoleError::Interrupted(_)) => EXIT_INTERRUPTED,
            _ => EXIT_FAILED,
        }
    }
}

/// Our stdout: written and flushed as the output comes; a reader that went
/// away (`| head`) stops the writing, not the run.
struct Sink<'a> {
    out: &'a mut dyn Write,
    broken: bool,
}

impl Sink<'_> {
    fn write(&mut self, b: &[u8]) {
        if !self.broken
            && self
                .out
                .write_all(b)
                .and_then(|()| self.out.flush())
                .is_err()
        {
            self.broken = true;
        }
    }
}

/// Runs `o.script` in the guest, which `backend` starts on the first host
/// of its route, and writes its output (stdout and stderr, merged as on the
/// console) to `out`. The guest is powered off afterwards (or kept, with
/// `o.keep`); on an error the caller drops the backend, which tears down
/// what is left.
pub fn run(
    backend: &mut dyn Backend,
    o: &RunOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Event),
    out: &mut dyn Write,
) -> Result<RunOutcome, RunError> {
    let host = backend.route().first().copied().unwrap_or(0);
    let start = Instant::now();
    backend.start(host, progress)?;
    let mut console = match shell::open(backend, host, o.boot_timeout, cancel) {
        Ok(c) => c,
        Err(e) if e.interrupted() => return Err(RunError::Interrupted { kept: None }),
        Err(ShellError::Backend(e)) => return Err(e.into()),
        Err(ShellError::Console(e)) => return Err(e.into()),
    };
    progress(&Event::GuestUp {
        host: backend.host_name(host),
        ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    let mut sink = Sink { out, broken: false };
    let result = console.exec(&o.script, "the command", o.timeout, cancel, &mut |b| {
        sink.write(b);
    });
    match result {
        Ok(code) => {
            let kept = if o.keep {
                drop(console);
                Some(backend.keep(host)?)
            } else {
                // A clean power-off: the init stops every process, syncs and
                // remounts read-only before the guest goes.
                let _ = console.send_line("poweroff");
                // The console stays connected until the guest is gone: a
                // console closed at once can take the typed line's end with
                // it (QEMU drops what its serial port has not taken yet).
                let stopped = backend.stop(host, POWEROFF_GRACE);
                drop(console);
                stopped?;
                None
            };
            Ok(RunOutcome {
                end: RunEnd::Exited(code),
                kept,
            })
        }
        Err(e @ (ConsoleError::Timeout { .. } | ConsoleError::Interrupted(_))) => {
            let kept = if o.keep {
                // SIGINT to the command from the tty; the guest stays.
                let _ = console.interrupt(INTERRUPT_GRACE, &mut |b| sink.write(b));
                drop(console);
                Some(backend.keep(host)?)
            } else {
                drop(console);
                backend.stop(host, Duration::ZERO)?;
                None
            };
            match e {
                ConsoleError::Timeout { secs, .. } => Ok(RunOutcome {
                    end: RunEnd::TimedOut { secs },
                    kept,
                }),
                _ => Err(RunError::Interrupted { kept }),
            }
        }
        Err(e) => {
            drop(console);
            backend.ensure_running(host)?;
            Err(e.into())
        }
    }
}

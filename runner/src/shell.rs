//! The console shell of the guest on one of a backend's hosts, answering:
//! what `imgrun run` and `--workload` type their commands into.

use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::console::{ConsoleError, ConsoleSession, LinkError};
use crate::migrate::{Backend, BackendError};

/// How long to wait before connecting again to a console that closed.
const RETRY: Duration = Duration::from_secs(2);

/// Why there is no shell.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
}

impl ShellError {
    /// True if a signal stopped the wait.
    pub fn interrupted(&self) -> bool {
        matches!(
            self,
            ShellError::Backend(BackendError::Interrupted(_))
                | ShellError::Console(
                    ConsoleError::Interrupted(_) | ConsoleError::Link(LinkError::Interrupted(_))
                )
        )
    }
}

/// Connects to the console of the guest on `host` and waits up to
/// `timeout` for its shell. A console that closes is connected to again
/// (`xl console` of a domain just created may find no console yet), unless
/// the backend knows the guest stopped (a QEMU that exited says why).
pub fn open(
    backend: &mut dyn Backend,
    host: usize,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<ConsoleSession, ShellError> {
    let start = Instant::now();
    loop {
        let mut s = ConsoleSession::open(backend.console(host)?);
        let left = timeout.saturating_sub(start.elapsed());
        match s.wait_shell(left, cancel) {
            Ok(()) => return Ok(s),
            Err(ConsoleError::Closed { .. }) if start.elapsed() + RETRY < timeout => {
                backend.ensure_running(host)?;
                drop(s);
                cancel.sleep(RETRY).map_err(ConsoleError::from)?;
            }
            Err(e) => {
                backend.ensure_running(host)?;
                return Err(e.into());
            }
        }
    }
}

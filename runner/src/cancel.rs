//! Ctrl-C / SIGTERM: a flag the waiting loops check, so guards get to clean up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the run must stop (a signal arrived, or a caller asked).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

/// The run was interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by a signal; cleaned up")]
pub struct Interrupted;

impl Cancel {
    /// A flag set by SIGINT, SIGTERM and SIGHUP.
    pub fn on_signals() -> std::io::Result<Cancel> {
        let c = Cancel::default();
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register(sig, Arc::clone(&c.0))?;
        }
        Ok(c)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// `Err(Interrupted)` once the flag is set.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_set() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }

    /// Sleeps up to `d`, returning early (with `Err`) when cancelled.
    pub fn sleep(&self, d: std::time::Duration) -> Result<(), Interrupted> {
        let end = std::time::Instant::now() + d;
        loop {
            self.check()?;
            let now = std::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(std::time::Duration::from_millis(20)));
        }
    }
}

//! The guest's serial console (ttyS0) over the unix socket QEMU listens on:
//! everything the guest prints is kept in a transcript; lines typed go to
//! the console shell.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors using the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot connect to the console socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing to the console: {0}")]
    Write(std::io::Error),
    #[error("no {needle:?} on the console within {secs} s; console tail:\n{tail}")]
    Timeout {
        needle: String,
        secs: u64,
        tail: String,
    },
    #[error("the console closed (QEMU exited) before {needle:?} appeared; console tail:\n{tail}")]
    Closed { needle: String, tail: String },
}

/// A connected console.
#[derive(Debug)]
pub struct Console {
    stream: UnixStream,
    seen: Arc<Mutex<String>>,
    closed: Arc<AtomicBool>,
    marker: AtomicU32,
}

/// The last `n` characters of `s` (whole characters).
pub fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

impl Console {
    /// Connects to QEMU's console socket and starts collecting output.
    pub fn connect(path: &Path) -> Result<Console, ConsoleError> {
        let stream = UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = stream.try_clone().map_err(|source| ConsoleError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let seen = Arc::new(Mutex::new(String::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (seen2, closed2) = (Arc::clone(&seen), Arc::clone(&closed));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut pending: Vec<u8> = Vec::new();
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Keep multi-byte characters split across reads whole.
                        pending.extend(buf.iter().take(n).filter(|b| **b != b'\r'));
                        let valid = match std::str::from_utf8(&pending) {
                            Ok(_) => pending.len(),
                            Err(e) if e.error_len().is_none() => e.valid_up_to(),
                            Err(_) => pending.len(),
                        };
                        let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                        pending.drain(..valid);
                        seen2
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&text);
                    }
                }
            }
            closed2.store(true, Ordering::SeqCst);
        });
        Ok(Console {
            stream,
            seen,
            closed,
            marker: AtomicU32::new(0),
        })
    }

    /// Everything received so far (carriage returns removed).
    pub fn transcript(&self) -> String {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many bytes have been received; a position for [`Console::wait_for_from`].
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether QEMU closed the console (it exited).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Types `line` and Enter.
    pub fn send_line(&self, line: &str) -> Result<(), ConsoleError> {
        let mut s = &self.stream;
        s.write_all(line.as_bytes())
            .and_then(|()| s.write_all(b"\n"))
            .map_err(ConsoleError::Write)
    }

    /// Waits until `needle` appears at or after byte `from`; returns the byte
    /// position just after it.
    pub fn wait_for_from(
        &self,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<usize, ConsoleError> {
        let start = Instant::now();
        loop {
            {
                let s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                let from = from.min(s.len());
                if let Some(i) = s.get(from..).and_then(|rest| rest.find(needle)) {
                    return Ok(from + i + needle.len());
                }
                if self.is_closed() {
                    return Err(ConsoleError::Closed {
                        needle: needle.into(),
                        tail: tail(&s, 4000),
                    });
                }
                if start.elapsed() > timeout {
                    return Err(ConsoleError::Timeout {
                        needle: needle.into(),
                        secs: timeout.as_secs(),
                        tail: tail(&s, 4000),
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for `needle` anywhere in the transcript.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<usize, ConsoleError> {
        self.wait_for_from(0, needle, timeout)
    }

    /// Waits until the shell on the console evaluates a command: types an
    /// arithmetic echo every few seconds until its result appears (the typed
    /// text itself never contains the result).
    pub fn wait_for_shell(&self, timeout: Duration) -> Result<(), ConsoleError> {
        let start = Instant::now();
        let from = self.len();
        loop {
            self.send_line("echo SHELL-READY-$((20+22))")?;
            let left = timeout.saturating_sub(start.elapsed());
            match self.wait_for_from(from, "SHELL-READY-42", left.min(Duration::from_secs(3))) {
                Ok(_) => return Ok(()),
                Err(ConsoleError::Timeout { .. }) if start.elapsed() < timeout => {}
                Err(ConsoleError::Timeout { tail, .. }) => {
                    return Err(ConsoleError::Timeout {
                        needle: "SHELL-READY-42 (the console shell)".into(),
                        secs: timeout.as_secs(),
                        tail,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `command` (one line, not ending in `&`) in the console shell and
    /// returns what it printed (between two markers the shell prints around
    /// it), without the final newline.
    pub fn run(&self, command: &str, timeout: Duration) -> Result<String, ConsoleError> {
        let n = self.marker.fetch_add(1, Ordering::SeqCst);
        // `printf '%s-%s\n' BEGIN 7` prints `BEGIN-7`, which the echoed
        // command line never contains.
        let begin = format!("E2E-BEGIN-{n}\n");
        let end = format!("E2E-END-{n}\n");
        let from = self.len();
        self.send_line(&format!(
            "printf '%s-%s\\n' E2E-BEGIN {n}; {command}; printf '%s-%s\\n' E2E-END {n}"
        ))?;
        let after_begin = self.wait_for_from(from, &begin, timeout)?;
        let after_end = self.wait_for_from(after_begin, &end, timeout)?;
        let s = self.transcript();
        let out = &s[after_begin..after_end - end.len()];
        Ok(out.strip_suffix('\n').unwrap_or(out).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_whole_characters() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aé", 2), "é");
    }
}

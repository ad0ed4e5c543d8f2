//! A byte stream to and from the guest's console: QEMU's console socket,
//! or a process attached to it (`ssh -tt HOST xl console NAME`). Dropping
//! the link closes it: the socket is shut down, the process killed (by its
//! handle) and reaped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cancel::{Cancel, Interrupted};

/// What keeps the stream open.
#[derive(Debug)]
enum Holder {
    Socket(UnixStream),
    Process {
        child: Child,
        stderr: Arc<Mutex<Vec<u8>>>,
    },
}

/// A connection to a guest's console.
pub struct ConsoleLink {
    what: String,
    reader: Option<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    holder: Holder,
}

impl std::fmt::Debug for ConsoleLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLink")
            .field("what", &self.what)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// How much of a process's stderr is kept.
const STDERR_TAIL: usize = 2000;

impl ConsoleLink {
    /// Connects to QEMU's console socket at `path`, retrying while it does
    /// not exist or refuses (QEMU is starting) until `timeout`.
    pub fn unix(path: &Path, timeout: Duration, cancel: &Cancel) -> Result<ConsoleLink, LinkError> {
        let start = Instant::now();
        let what = format!("the console socket {}", path.display());
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= timeout => {
                    return Err(LinkError::Connect { what, source: e });
                }
                Err(_) => {
                    cancel.sleep(Duration::from_millis(50))?;
                }
            }
        };
        ConsoleLink::stream(stream, what)
    }

    /// A link over a connected socket; `what` names it in messages.
    pub fn stream(stream: UnixStream, what: String) -> Result<ConsoleLink, LinkError> {
        let io = |source| LinkError::Connect {
            what: what.clone(),
            source,
        };
        let reader = stream.try_clone().map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(ConsoleLink {
            what,
            reader: Some(Box::new(reader)),
            writer: Box::new(writer),
            holder: Holder::Socket(stream),
        })
    }

    /// Starts `cmd` with its stdin and stdout as the console; `what` names
    /// it in messages. Its stderr is kept for [`ConsoleLink::stderr_tail`].
    pub fn process(mut cmd: Command, what: String) -> Result<ConsoleLink, LinkError> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LinkError::Connect {
            what: what.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LinkError::Connect {
                what,
                source: std::io::Error::other("no pipes to the process"),
            });
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                let mut s = keep.lock().unwrap_or_else(|e| e.into_inner());
                s.extend_from_slice(&buf[..n]);
                let over = s.len().saturating_sub(STDERR_TAIL);
                s.drain(..over);
            }
        });
        Ok(ConsoleLink {
            what,
            reader: Some(Box::new(stdout)),
            writer: Box::new(stdin),
            holder: Holder::Process { child, stderr },
        })
    }

    /// What this is a link to, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The reading half (once).
    pub(super) fn take_reader(&mut self) -> Option<Box<dyn Read + Send>> {
        self.reader.take()
    }

    pub(super) fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// For a process: what it said on stderr (ssh's own errors), if anything.
    pub fn stderr_tail(&self) -> String {
        match &self.holder {
            Holder::Socket(_) => String::new(),
            Holder::Process { stderr, .. } => {
                let s = stderr.lock().unwrap_or_else(|e| e.into_inner());
                String::from_utf8_lossy(&s).trim().to_string()
            }
        }
    }
}

impl Drop for ConsoleLink {
    fn drop(&mut self) {
        match &mut self.holder {
            // Wakes the reader thread too.
            Holder::Socket(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Holder::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Errors opening a console link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {what}: {source}")]
    Connect {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

//! Running commands in the guest's console shell over a [`ConsoleLink`]:
//! wait for the shell, type one line per command ([`super::line`]), read
//! its output and exit status back out of the stream ([`super::demux`]).
//!
//! A thread reads the link and hands the bytes over a channel; the caller's
//! loop feeds them to the parser and gives out the output as it comes.

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::demux::{Demux, Piece};
use super::line::{self, LineError, Markers};
use super::link::{ConsoleLink, LinkError};
use crate::cancel::{Cancel, Interrupted};

/// Errors running a command on the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("writing to {what}: {source}")]
    Write {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} closed{stderr}; the console's last output:\n{tail}")]
    Closed {
        what: String,
        stderr: String,
        tail: String,
    },
    #[error(
        "no shell answered on {what} within {secs} s: imgrun types commands into the guest's console shell ([init] shell in the recipe, /bin/sh by default); the console's last output:\n{tail}"
    )]
    NoShell {
        what: String,
        secs: u64,
        tail: String,
    },
    #[error(
        "the shell on {what} has no working `stty` (busybox's applet): imgrun cannot turn the console's echo off"
    )]
    NoStty { what: String },
    #[error("{what} did not finish within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("{what}: the shell printed no exit status")]
    NoStatus { what: String },
    #[error(transparent)]
    Line(#[from] LineError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// How long the parser waits for more bytes before it gives out a line
/// received without its newline.
const IDLE: Duration = Duration::from_millis(100);
/// The ready line is typed again this often until the shell answers.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long a shell already known to run may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// What imgbuild's init logs (on the console, through the kernel) once it
/// started the console shell and the services.
const BOOTED: &[u8] = b"boot complete";
/// What the init logs once the console shell runs: the ready line is typed
/// [`AFTER_SHELL_START`] later rather than at the next [`PROBE_EVERY`].
const SHELL_STARTED: &[u8] = b"started console shell";
/// Long enough for the shell to have set up its terminal (which flushes
/// what was typed before).
const AFTER_SHELL_START: Duration = Duration::from_millis(300);
/// How long the console shell may take to answer once the init said
/// [`BOOTED`]: a guest whose `[init] shell` is no shell is told apart from
/// a slow boot that soon.
const SHELL_AFTER_BOOT: Duration = Duration::from_secs(20);
/// How many times in a row the shell must say it has no `stty` to be believed.
const NO_STTY_TIMES: u32 = 3;
/// How much of the console's recent output error messages show.
const RECENT: usize = 3000;
/// `^U`: the tty (and the shell's line editor) drop what was typed so far.
const KILL_LINE: u8 = 0x15;
/// `^C`: the tty sends SIGINT to the command in the foreground.
const INTERRUPT: u8 = 0x03;

/// A guest's console shell, driven line by line.
#[derive(Debug)]
pub struct ConsoleSession {
    link: ConsoleLink,
    rx: Receiver<Vec<u8>>,
    closed: bool,
    recent: Vec<u8>,
    nonce_base: u64,
    count: u32,
    shell_ready: bool,
    /// The command stopped waiting for (timeout, signal), still running.
    pending: Option<(Demux, &'static str)>,
}

fn nonce_base() -> u64 {
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_ok() {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The low bits: a seed, not a time.
    (t as u64) ^ (u64::from(std::process::id()) << 32)
}

impl ConsoleSession {
    /// Starts reading `link`.
    pub fn open(mut link: ConsoleLink) -> ConsoleSession {
        let (tx, rx) = channel();
        if let Some(mut r) = link.take_reader() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        ConsoleSession {
            link,
            rx,
            closed: false,
            recent: Vec::new(),
            nonce_base: nonce_base(),
            count: 0,
            shell_ready: false,
            pending: None,
        }
    }

    /// What the console is, for messages.
    pub fn what(&self) -> &str {
        self.link.what()
    }

    /// The console's last output, carriage returns removed.
    pub fn recent(&self) -> String {
        String::from_utf8_lossy(&self.recent).replace('\r', "")
    }

    fn nonce(&mut self) -> String {
        self.count = self.count.wrapping_add(1);
        let n = format!(
            "{:012x}{:04x}",
            self.nonce_base & 0xffff_ffff_ffff,
            self.count & 0xffff
        );
        debug_assert_eq!(n.len(), line::NONCE_PLACEHOLDER.len());
        n
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        match self.link.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                self.closed = true;
                Err(self.closed())
            }
            Err(source) => Err(ConsoleError::Write {
                what: self.link.what().to_string(),
                source,
            }),
        }
    }

    fn keep_recent(&mut self, b: &[u8]) {
        self.recent.extend_from_slice(b);
        let over = self.recent.len().saturating_sub(RECENT);
        self.recent.drain(..over);
    }

    /// Types `line` and Enter (for `poweroff`, whose output nobody reads).
    pub fn send_line(&mut self, line: &str) -> Result<(), ConsoleError> {
        self.write(format!("{line}\n").as_bytes())
    }

    /// The error for a closed console, with the last of what it said.
    fn closed(&mut self) -> ConsoleError {
        // What the reader still holds, for the tail.
        let deadline = Instant::now() + Duration::from_millis(200);
        while let Ok(b) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.keep_recent(&b);
        }
        let stderr = self.link.stderr_tail();
        ConsoleError::Closed {
            what: self.link.what().to_string(),
            stderr: if stderr.is_empty() {
                String::new()
            } else {
                format!(" ({stderr})")
            },
            tail: self.recent(),
        }
    }

    /// The next bytes within `wait`; `None` when none came.
    fn recv(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ConsoleError> {
        if self.closed {
            return Err(self.closed());
        }
        match self.rx.recv_timeout(wait) {
            Ok(b) => {
                self.keep_recent(&b);
                Ok(Some(b))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Err(self.closed())
            }
        }
    }

    /// Waits until the shell runs what is typed, typing the ready line
    /// (which turns the echo off) every few seconds, for up to `timeout`.
    pub fn wait_shell(&mut self, timeout: Duration, cancel: &Cancel) -> Result<(), ConsoleError> {
        let start = Instant::now();
        let nonce = self.nonce();
        let mut d = Demux::new(&Markers::new(&nonce));
        let probe = line::ready_line(&nonce);
        let mut typed: Option<Instant> = None;
        let mut no_stty = 0;
        let mut booted: Option<Instant> = None;
        let mut shell_started = false;
        loop {
            cancel.check()?;
            if typed.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
                let mut bytes = vec![KILL_LINE];
                bytes.extend_from_slice(probe.as_bytes());
                bytes.push(b'\n');
                self.write(&bytes)?;
                typed = Some(Instant::now());
            }
            if let Some(b) = self.recv(IDLE)? {
                if booted.is_none() && self.recent.windows(BOOTED.len()).any(|w| w == BOOTED) {
                    booted = Some(Instant::now());
                }
                if !shell_started
                    && self
                        .recent
                        .windows(SHELL_STARTED.len())
                        .any(|w| w == SHELL_STARTED)
                {
                    shell_started = true;
                    typed = Instant::now().checked_sub(PROBE_EVERY - AFTER_SHELL_START);
                }
                for p in d.feed(&b) {
                    match p {
                        Piece::Ready { stty: true } => {
                            self.shell_ready = true;
                            return Ok(());
                        }
                        // Also what a line that lost its first bytes
                        // says (a shell just starting flushes its input
                        // when it sets up the terminal): type it again.
                        Piece::Ready { stty: false } if no_stty + 1 < NO_STTY_TIMES => {
                            no_stty += 1;
                            typed = None;
                        }
                        Piece::Ready { stty: false } => {
                            return Err(ConsoleError::NoStty {
                                what: self.link.what().to_string(),
                            });
                        }
                        _ => {}
                    }
                }
            }
            let after_boot = booted.is_some_and(|t| t.elapsed() >= SHELL_AFTER_BOOT);
            if start.elapsed() >= timeout || after_boot {
                return Err(ConsoleError::NoShell {
                    what: self.link.what().to_string(),
                    secs: start.elapsed().as_secs(),
                    tail: self.recent(),
                });
            }
        }
    }

    /// Runs `script` (shell code, [`line::argv_script`] or
    /// [`line::eval_script`]) and returns its exit status, giving its
    /// output to `out` as it comes. `what` names it in errors. Stops
    /// waiting after `timeout` or on a signal (the command still runs:
    /// [`ConsoleSession::interrupt`] stops it).
    pub fn exec(
        &mut self,
        script: &str,
        what: &'static str,
        timeout: Option<Duration>,
        cancel: &Cancel,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<i32, ConsoleError> {
        let start = Instant::now();
        // The echo is off after the ready line, and on after each command.
        self.wait_shell(READY_TIMEOUT, cancel)?;
        let nonce = self.nonce();
        let markers = Markers::new(&nonce);
        let text = line::exec_line(&nonce, script, what)?;
        self.send_line(&text)?;
        let mut d = Demux::new(&markers);
        let deadline = timeout.map(|t| start + t);
        loop {
            let stop = if cancel.is_set() {
                Some(ConsoleError::Interrupted(Interrupted))
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(ConsoleError::Timeout {
                    what: what.to_string(),
                    secs: timeout.map_or(0, |t| t.as_secs()),
                })
            } else {
                None
            };
            if let Some(e) = stop {
                self.pending = Some((d, what));
                return Err(e);
            }
            if let Some(code) = self.pump(&mut d, out)? {
                return code.ok_or_else(|| ConsoleError::NoStatus {
                    what: what.to_string(),
                });
            }
        }
    }

    /// One read (or idle tick): output to `out`; `Some(status)` at the end.
    fn pump(
        &mut self,
        d: &mut Demux,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<Option<i32>>, ConsoleError> {
        let pieces = match self.recv(IDLE)? {
            Some(b) => d.feed(&b),
            None => d.flush(),
        };
        for p in pieces {
            match p {
                Piece::Output(o) => out(&o),
                Piece::End(code) => return Ok(Some(code)),
                Piece::Ready { .. } | Piece::Begin => {}
            }
        }
        Ok(None)
    }

    /// After a timeout or a signal: `^C` to the command still running
    /// (SIGINT from the tty), then its output and status, for up to `within`.
    pub fn interrupt(
        &mut self,
        within: Duration,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<i32, ConsoleError> {
        let Some((mut d, what)) = self.pending.take() else {
            return Err(ConsoleError::NoStatus {
                what: "no command".into(),
            });
        };
        self.write(&[INTERRUPT])?;
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(code) = self.pump(&mut d, out)? {
                return code.ok_or_else(|| ConsoleError::NoStatus {
                    what: what.to_string(),
                });
            }
        }
        Err(ConsoleError::Timeout {
            what: format!("{what} (after ^C)"),
            secs: within.as_secs(),
        })
    }

    /// Runs `script` and returns its status and its output's last `max`
    /// bytes.
    pub fn capture(
        &mut self,
        script: &str,
        what: &'static str,
        timeout: Duration,
        max: usize,
        cancel: &Cancel,
    ) -> Result<(i32, Vec<u8>), ConsoleError> {
        let mut text = Vec::new();
        let code = self.exec(script, what, Some(timeout), cancel, &mut |b| {
            text.extend_from_slice(b);
            let over = text.len().saturating_sub(max);
            text.drain(..over);
        })?;
        Ok((code, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};

    /// A console shell on the other end of a socket pair: each line is run
    /// by the host's `sh` (with a do-nothing `stty`: there is no tty), its
    /// output streamed back with `\n` as `\r\n`, as a tty writes it.
    fn fake_shell() -> ConsoleSession {
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut w = theirs.try_clone().unwrap();
            let _ = w.write_all(b"\r\n/ # ");
            for line in BufReader::new(theirs).lines().map_while(Result::ok) {
                let line: String = line.chars().filter(|c| *c != '\u{15}').collect();
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "exec 2>&1; stty() {{ :; }}; {}",
                        crate::console::line::tests::on_host(&line)
                    ))
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut o = child.stdout.take().unwrap();
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = o.read(&mut buf) {
                    let crlf: Vec<u8> = buf[..n]
                        .iter()
                        .flat_map(|&b| {
                            if b == b'\n' {
                                vec![b'\r', b'\n']
                            } else {
                                vec![b]
                            }
                        })
                        .collect();
                    if w.write_all(&crlf).is_err() {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                }
                let _ = child.wait();
                let _ = w.write_all(b"/ # ");
            }
        });
        ConsoleSession::open(ConsoleLink::stream(ours, "a fake console".into()).unwrap())
    }

    #[test]
    fn runs_commands_and_reads_status_and_output() {
        let mut s = fake_shell();
        let c = Cancel::default();
        s.wait_shell(Duration::from_secs(5), &c).unwrap();
        let argv = ["sh", "-c", "printf 'a\\nb'; echo ' err' >&2; exit 7"].map(String::from);
        let (code, out) = s
            .capture(
                &line::argv_script(&argv).unwrap(),
                "t",
                Duration::from_secs(5),
                100,
                &c,
            )
            .unwrap();
        assert_eq!(
            (code, String::from_utf8_lossy(&out).as_ref()),
            (7, "a\nb err\n")
        );
        // The session goes on: a second command, the tail limited.
        let (code, out) = s
            .capture("seq 1 100", "t", Duration::from_secs(5), 7, &c)
            .unwrap();
        assert_eq!(
            (code, String::from_utf8_lossy(&out).as_ref()),
            (0, "99\n100\n")
        );
    }

    #[test]
    fn output_streams_before_the_command_ends() {
        let mut s = fake_shell();
        let c = Cancel::default();
        let start = Instant::now();
        let mut seen: Vec<(Duration, Vec<u8>)> = Vec::new();
        let code = s
            .exec(
                "echo one; sleep 1; printf two; sleep 1; echo",
                "t",
                Some(Duration::from_secs(10)),
                &c,
                &mut |b| seen.push((start.elapsed(), b.to_vec())),
            )
            .unwrap();
        assert_eq!(code, 0);
        let at = |text: &[u8]| {
            seen.iter()
                .find(|(_, b)| b.windows(text.len()).any(|w| w == text))
                .map(|(t, _)| *t)
                .unwrap()
        };
        let total = start.elapsed();
        // "two" has no newline until a second later: the idle flush gives it out.
        assert!(
            at(b"one\n") + Duration::from_millis(700) < at(b"two"),
            "{seen:?}"
        );
        assert!(at(b"two") + Duration::from_millis(700) < total, "{seen:?}");
    }

    #[test]
    fn a_timeout_stops_waiting() {
        let mut s = fake_shell();
        let c = Cancel::default();
        let start = Instant::now();
        let e = s
            .exec(
                "sleep 3",
                "the command",
                Some(Duration::from_millis(300)),
                &c,
                &mut |_| {},
            )
            .unwrap_err();
        assert!(matches!(e, ConsoleError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));
        c.set();
        let e = s.exec("true", "t", None, &c, &mut |_| {}).unwrap_err();
        assert!(matches!(e, ConsoleError::Interrupted(_)), "{e}");
    }

    #[test]
    fn a_silent_console_has_no_shell_and_a_closed_one_says_so() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut s = ConsoleSession::open(ConsoleLink::stream(ours, "console x".into()).unwrap());
        let e = s
            .wait_shell(Duration::from_millis(300), &Cancel::default())
            .unwrap_err();
        assert!(matches!(e, ConsoleError::NoShell { .. }), "{e}");
        assert!(e.to_string().contains("[init] shell"), "{e}");
        (&theirs).write_all(b"Kernel panic\r\n").unwrap();
        drop(theirs);
        let e = s
            .wait_shell(Duration::from_secs(3), &Cancel::default())
            .unwrap_err();
        assert!(
            matches!(&e, ConsoleError::Closed { tail, .. } if tail.contains("Kernel panic")),
            "{e}"
        );
    }

    #[test]
    fn nonces_have_the_placeholders_length() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut s = ConsoleSession::open(ConsoleLink::stream(ours, "x".into()).unwrap());
        let (a, b) = (s.nonce(), s.nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), line::NONCE_PLACEHOLDER.len());
    }
}

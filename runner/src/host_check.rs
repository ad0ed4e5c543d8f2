//! `migrate-check --host-check 'CMD'`: shell code run on this machine after
//! each migration, in the network imgrun reaches the guest from (QEMU: its
//! private namespace), with `GUEST_IP` set to the guest's address: what a
//! client outside the guest sees, e.g. a page fetched from the guest's
//! server. Exit 0 passes the `host-check` check.

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cancel::{Cancel, Interrupted};
use crate::migrate::Backend;
use crate::qemu::process::die_with_parent;

/// How long the command may run.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How much of its output the check's detail keeps.
const OUTPUT: usize = 500;

/// The command, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCheck {
    code: String,
}

/// An empty `--host-check`.
#[derive(Debug, thiserror::Error)]
#[error("--host-check: no command given")]
pub struct EmptyHostCheck;

impl HostCheck {
    pub fn new(code: &str) -> Result<HostCheck, EmptyHostCheck> {
        if code.trim().is_empty() {
            return Err(EmptyHostCheck);
        }
        Ok(HostCheck {
            code: code.to_string(),
        })
    }

    /// Runs the command (`sh -c`) where `backend` reaches the guest:
    /// its exit status and the end of its output (stdout and stderr), or
    /// why it did not finish. Killed after a minute, or on a signal.
    pub fn run(
        &self,
        backend: &dyn Backend,
        guest: Ipv4Addr,
        cancel: &Cancel,
    ) -> Result<Result<(i32, String), String>, Interrupted> {
        self.run_with(backend.host_command("sh"), guest, TIMEOUT, cancel)
    }

    /// [`HostCheck::run`] with `cmd` as the `sh` to run.
    fn run_with(
        &self,
        mut cmd: std::process::Command,
        guest: Ipv4Addr,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Result<(i32, String), String>, Interrupted> {
        cmd.arg("-c")
            .arg(&self.code)
            .env("GUEST_IP", guest.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A Ctrl-C on the terminal reaches imgrun, which ends it.
            .process_group(0);
        die_with_parent(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("cannot run sh: {e}"))),
        };
        let text = Arc::new(Mutex::new(Vec::new()));
        let drained = Arc::new(AtomicUsize::new(0));
        let pipes: Vec<_> = [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        let n_pipes = pipes.len();
        for mut r in pipes {
            let (text, drained) = (Arc::clone(&text), Arc::clone(&drained));
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    let mut t = text.lock().unwrap_or_else(|e| e.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let over = t.len().saturating_sub(OUTPUT);
                    t.drain(..over);
                }
                drained.fetch_add(1, Ordering::SeqCst);
            });
        }
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Ok(st),
                Ok(None) => {}
                Err(e) => break Err(format!("waiting for sh: {e}")),
            }
            if cancel.is_set() || start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                if cancel.is_set() {
                    return Err(Interrupted);
                }
                break Err(format!(
                    "did not finish within {} s (killed)",
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The rest of its output; a process it left in the background may
        // hold the pipes open: not waited for long.
        let end = Instant::now() + Duration::from_secs(1);
        while drained.load(Ordering::SeqCst) < n_pipes && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let out =
            String::from_utf8_lossy(&text.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        Ok(status.map(|st| (st.code().unwrap_or(-1), out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(code: &str, timeout: Duration) -> Result<(i32, String), String> {
        HostCheck::new(code)
            .unwrap()
            .run_with(
                Command::new("sh"),
                Ipv4Addr::new(10, 99, 0, 2),
                timeout,
                &Cancel::default(),
            )
            .unwrap()
    }

    #[test]
    fn status_output_and_the_guests_address() {
        assert_eq!(
            run("echo \"at $GUEST_IP\"; exit 3", Duration::from_secs(5)),
            Ok((3, "at 10.99.0.2\n".to_string()))
        );
        assert_eq!(
            run("echo err >&2", Duration::from_secs(5)),
            Ok((0, "err\n".into()))
        );
        let long = run("seq 1 1000", Duration::from_secs(5)).unwrap();
        assert!(
            long.1.len() <= OUTPUT && long.1.ends_with("999\n1000\n"),
            "{long:?}"
        );
        assert!(HostCheck::new(" ").is_err());
    }

    #[test]
    fn a_command_that_does_not_finish_is_killed() {
        let start = Instant::now();
        let r = run("sleep 30", Duration::from_millis(300));
        assert!(matches!(&r, Err(e) if e.contains("killed")), "{r:?}");
        // Its background child holding the pipe does not hold the check up.
        let r = run("sleep 30 & echo started", Duration::from_secs(5));
        assert_eq!(r, Ok((0, "started\n".into())));
        assert!(start.elapsed() < Duration::from_secs(5));
        let c = Cancel::default();
        c.set();
        let r = HostCheck::new("sleep 30").unwrap().run_with(
            Command::new("sh"),
            Ipv4Addr::LOCALHOST,
            Duration::from_secs(5),
            &c,
        );
        assert!(r.is_err());
    }
}

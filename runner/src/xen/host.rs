//! A Xen host the runner drives: this machine (`localhost`) or one reached by
//! ssh (`[user@]host`). Every command is an argv; for ssh it is quoted word by
//! word ([`super::shell`]) because ssh hands the remote shell one string.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

use super::shell;

/// Errors running a command on a Xen host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "{spec:?} is not a host: use localhost or [user@]host (letters, digits, . - _ : @ only)"
    )]
    BadSpec { spec: String },
    #[error("on {host}: cannot run {cmd}: {source}")]
    Spawn {
        host: String,
        cmd: String,
        source: std::io::Error,
    },
    #[error("on {host}: {cmd} did not finish within {secs} s (killed)")]
    Timeout {
        host: String,
        cmd: String,
        secs: u64,
    },
    #[error("on {host}: {cmd} interrupted")]
    Interrupted { host: String, cmd: String },
}

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stderr (else stdout), trimmed to its last `max` bytes, for error messages.
    pub fn tail(&self, max: usize) -> String {
        let s = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let s = s.trim();
        let mut start = s.len().saturating_sub(max);
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_string()
    }
}

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XenHost {
    /// This machine (the runner runs in dom0).
    Local,
    /// `ssh [-F config] dest`.
    Ssh {
        dest: String,
        config: Option<PathBuf>,
    },
}

/// True if `s` is safe inside the shell string xl builds for `ssh HOST xl migrate-receive`.
fn valid_dest(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b))
        && s.bytes().filter(|&b| b == b'@').count() <= 1
}

impl XenHost {
    /// `localhost` (this machine, no ssh) or `[user@]host` (ssh with the user's
    /// ssh config, or `config` as `ssh -F`).
    pub fn parse(spec: &str, config: Option<&Path>) -> Result<XenHost, HostError> {
        if spec == "localhost" {
            return Ok(XenHost::Local);
        }
        if !valid_dest(spec) {
            return Err(HostError::BadSpec {
                spec: spec.to_string(),
            });
        }
        Ok(XenHost::Ssh {
            dest: spec.to_string(),
            config: config.map(Path::to_path_buf),
        })
    }

    /// The name used in reports and as `xl migrate`'s destination.
    pub fn name(&self) -> &str {
        match self {
            XenHost::Local => "localhost",
            XenHost::Ssh { dest, .. } => dest,
        }
    }

    /// The process that runs `argv` on this host.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> Command {
        self.command_with(argv, false)
    }

    /// As [`XenHost::command`], with a terminal on the host (`ssh -tt`, its
    /// escape character off: the bytes sent are the guest's), for
    /// programs that want one there: `xl console`.
    pub fn command_tty<S: AsRef<str>>(&self, argv: &[S]) -> Command {
        self.command_with(argv, true)
    }

    fn command_with<S: AsRef<str>>(&self, argv: &[S], tty: bool) -> Command {
        match self {
            XenHost::Local => {
                let mut c = Command::new(argv[0].as_ref());
                c.args(argv[1..].iter().map(AsRef::as_ref));
                c
            }
            XenHost::Ssh { dest, config } => {
                let mut c = Command::new("ssh");
                if let Some(f) = config {
                    c.arg("-F").arg(f);
                }
                c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
                if tty {
                    c.args(["-tt", "-e", "none"]);
                }
                c.args(["--", dest]).arg(shell::join(argv));
                c
            }
        }
    }

    /// Runs `argv` with `stdin` (a file or nothing), waiting at most `timeout`;
    /// a command still running then (or when `cancel` is set) is killed.
    pub fn run_with<S: AsRef<str>>(
        &self,
        argv: &[S],
        stdin: Option<&Path>,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Output, HostError> {
        let cmd = shell::join(argv);
        let mut c = self.command(argv);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        match stdin {
            Some(p) => {
                let f = std::fs::File::open(p).map_err(|source| HostError::Spawn {
                    host: self.name().into(),
                    cmd: format!("{cmd} < {}", p.display()),
                    source,
                })?;
                c.stdin(f);
            }
            None => {
                c.stdin(Stdio::null());
            }
        }
        let mut child = c.spawn().map_err(|source| HostError::Spawn {
            host: self.name().into(),
            cmd: cmd.clone(),
            source,
        })?;
        // Drain both pipes on threads so a chatty command never blocks.
        let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut s);
                }
                String::from_utf8_lossy(&s).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
        );
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(source) => {
                    return Err(HostError::Spawn {
                        host: self.name().into(),
                        cmd,
                        source,
                    });
                }
            }
            let stop = if cancel.is_set() {
                Some(HostError::Interrupted {
                    host: self.name().into(),
                    cmd: cmd.clone(),
                })
            } else if start.elapsed() > timeout {
                Some(HostError::Timeout {
                    host: self.name().into(),
                    cmd: cmd.clone(),
                    secs: timeout.as_secs(),
                })
            } else {
                None
            };
            if let Some(e) = stop {
                // Our own child, killed by its handle (PID), then reaped.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Output {
            success: status.success(),
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// [`XenHost::run_with`] without stdin.
    pub fn run<S: AsRef<str>>(
        &self,
        argv: &[S],
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Output, HostError> {
        self.run_with(argv, None, timeout, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(XenHost::parse("localhost", None).unwrap(), XenHost::Local);
        let h = XenHost::parse("root@10.99.0.12", None).unwrap();
        assert_eq!(h.name(), "root@10.99.0.12");
        for bad in ["", "-oProxyCommand=x", "a b", "h;rm", "a@b@c", "$(x)"] {
            assert!(XenHost::parse(bad, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_argv_quotes_each_word() {
        let h = XenHost::parse("root@h1", Some(Path::new("/run/ssh_config"))).unwrap();
        let c = h.command(&["xl", "migrate", "-s", "", "busybox", "xl migrate-receive"]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert_eq!(
            args,
            [
                "-F",
                "/run/ssh_config",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "--",
                "root@h1",
                "xl migrate -s '' busybox 'xl migrate-receive'"
            ]
        );
    }

    #[test]
    fn a_terminal_is_asked_for_with_the_escape_off() {
        let h = XenHost::parse("root@h1", None).unwrap();
        let c = h.command_tty(&["xl", "console", "busybox"]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-tt",
                "-e",
                "none",
                "--",
                "root@h1",
                "xl console busybox"
            ]
        );
        let local = XenHost::Local.command_tty(&["xl", "console", "busybox"]);
        assert_eq!(local.get_program(), "xl");
    }

    #[test]
    fn local_runs_argv_and_captures() {
        let c = Cancel::default();
        let o = XenHost::Local
            .run(
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                Duration::from_secs(5),
                &c,
            )
            .unwrap();
        assert!(!o.success);
        assert_eq!(o.code, Some(3));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.tail(100), "err");
    }

    #[test]
    fn timeouts_kill_the_command() {
        let c = Cancel::default();
        let start = Instant::now();
        let e = XenHost::Local
            .run(&["sleep", "5"], Duration::from_millis(200), &c)
            .unwrap_err();
        assert!(matches!(e, HostError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}

//! One QEMU process: spawned inside the namespace, killed by PID on drop.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::argv::{self, Console, VmConfig};
use crate::cancel::{Cancel, Interrupted};
use crate::qmp::{Qmp, QmpError};

/// Errors starting or talking to a QEMU process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A log file could not be created.
    #[error("cannot create {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    /// QEMU exited while we were waiting for it.
    #[error("{0}")]
    Died(Box<EarlyExit>),
    /// The QMP socket did not appear in time.
    #[error("QEMU {name}: QMP socket {path} not ready after {secs} s")]
    QmpTimeout {
        name: String,
        path: PathBuf,
        secs: u64,
    },
    /// The QMP handshake failed.
    #[error("QEMU {name}: {source}")]
    Qmp { name: String, source: QmpError },
    /// A signal arrived.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// A QEMU that exited before it should have, with the tails of its logs.
#[derive(Debug)]
pub struct EarlyExit {
    pub name: String,
    pub pid: u32,
    pub status: ExitStatus,
    pub stderr_log: PathBuf,
    pub stderr: String,
    pub console_log: PathBuf,
    pub console: String,
}

impl std::fmt::Display for EarlyExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QEMU {} (pid {}) exited ({}) early.\n--- stderr ({}) ---\n{}\n--- console tail ({}) ---\n{}",
            self.name,
            self.pid,
            self.status,
            self.stderr_log.display(),
            self.stderr,
            self.console_log.display(),
            self.console
        )
    }
}

/// A running QEMU. Dropping it kills the process (by its PID) and reaps it.
#[derive(Debug)]
pub struct QemuProcess {
    name: String,
    child: Child,
    console_log: PathBuf,
    stderr_log: PathBuf,
    qmp_socket: PathBuf,
    /// The console socket, with [`Console::SocketAndLog`].
    console_socket: Option<PathBuf>,
    /// [`QemuProcess::detach`] was called: it is left running.
    detached: bool,
}

/// Reads up to the last `max` bytes of a file, lossily, for error messages.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

/// Makes the command's process get SIGKILL when the thread that spawns it
/// exits (PR_SET_PDEATHSIG).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes the prctl(PR_SET_PDEATHSIG) system call, which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

impl QemuProcess {
    /// Starts QEMU. With `netns`, it runs inside that namespace (`ip netns exec`,
    /// which execs so the PID is QEMU's). Its stderr goes to `<console_log>.stderr`.
    ///
    /// QEMU gets SIGKILL when the *thread* that spawned it exits
    /// (PR_SET_PDEATHSIG), so even a SIGKILLed imgrun leaves no VM behind;
    /// spawn from a thread that outlives the VM.
    pub fn spawn(
        binary: &Path,
        name: &str,
        cfg: &VmConfig,
        netns: Option<&str>,
    ) -> Result<QemuProcess, ProcessError> {
        QemuProcess::spawn_with(binary, name, cfg, netns, false)
    }

    /// As [`QemuProcess::spawn`]; with `may_outlive`, QEMU gets no
    /// parent-death signal, so that [`QemuProcess::detach`] can leave it
    /// running after imgrun exits (`imgrun run --keep`; a SIGKILLed imgrun
    /// then leaves it running too).
    pub fn spawn_with(
        binary: &Path,
        name: &str,
        cfg: &VmConfig,
        netns: Option<&str>,
        may_outlive: bool,
    ) -> Result<QemuProcess, ProcessError> {
        let stderr_log = cfg.console_log.with_extension("stderr");
        let stderr = File::create(&stderr_log).map_err(|source| ProcessError::Log {
            path: stderr_log.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&cfg.qmp_socket);
        let console_socket = match &cfg.console {
            Console::SocketAndLog(p) => {
                let _ = std::fs::remove_file(p);
                Some(p.clone())
            }
            Console::LogOnly | Console::TerminalAndLog => None,
        };
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.args(argv::argv(cfg)).stderr(stderr);
        if matches!(cfg.console, Console::TerminalAndLog) {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        } else {
            // Own process group: a Ctrl-C on the terminal reaches only imgrun,
            // which then tears the VMs down in order.
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0);
        }
        if !may_outlive {
            die_with_parent(&mut cmd);
        }
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
        Ok(QemuProcess {
            name: name.to_string(),
            child,
            console_log: cfg.console_log.clone(),
            stderr_log,
            qmp_socket: cfg.qmp_socket.clone(),
            console_socket,
            detached: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn console_log(&self) -> &Path {
        &self.console_log
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The error describing this process's early exit, with its log tails.
    pub fn died(&self, status: ExitStatus) -> ProcessError {
        ProcessError::Died(Box::new(EarlyExit {
            name: self.name.clone(),
            pid: self.child.id(),
            status,
            stderr_log: self.stderr_log.clone(),
            stderr: tail(&self.stderr_log, 2000),
            console_log: self.console_log.clone(),
            console: tail(&self.console_log, 3000),
        }))
    }

    /// `Err(Died)` if the process has exited.
    pub fn ensure_alive(&mut self) -> Result<(), ProcessError> {
        match self.exited() {
            Some(st) => Err(self.died(st)),
            None => Ok(()),
        }
    }

    /// Waits for the QMP socket, noticing at once if QEMU dies meanwhile, and
    /// performs the QMP handshake.
    pub fn connect_qmp(&mut self, timeout: Duration, cancel: &Cancel) -> Result<Qmp, ProcessError> {
        let start = Instant::now();
        loop {
            cancel.check()?;
            self.ensure_alive()?;
            if let Ok(stream) = UnixStream::connect(&self.qmp_socket) {
                return Qmp::handshake(stream).map_err(|source| ProcessError::Qmp {
                    name: self.name.clone(),
                    source,
                });
            }
            if start.elapsed() > timeout {
                return Err(ProcessError::QmpTimeout {
                    name: self.name.clone(),
                    path: self.qmp_socket.clone(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Blocks until the process exits (for `boot`), or the run is cancelled.
    pub fn wait_or_cancel(&mut self, cancel: &Cancel) -> Result<ExitStatus, Interrupted> {
        loop {
            if let Some(st) = self.exited() {
                return Ok(st);
            }
            cancel.check()?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process by PID (SIGKILL) and reaps it; removes its sockets.
    pub fn kill(&mut self) {
        if self.detached {
            return;
        }
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.qmp_socket);
        if let Some(p) = &self.console_socket {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Leaves the process running, its sockets in place: nothing kills it
    /// any more (see [`QemuProcess::spawn_with`]).
    pub fn detach(&mut self) {
        self.detached = true;
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

//! `imgrun boot`: the guest under QEMU with its console on the terminal.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::cancel::{Cancel, Interrupted};
use crate::manifest::Manifest;
use crate::netns::{NetNs, NetnsError, TAPS};
use crate::qemu::argv::{Accel, Console};
use crate::qemu::process::{ProcessError, QemuProcess};
use crate::session::{Host, SessionError};

/// Options of `boot`.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub qemu: PathBuf,
    pub accel: Option<Accel>,
    pub log_dir: Option<PathBuf>,
    /// Further read-only disks (vdb, …).
    pub extra_disks: Vec<PathBuf>,
}

/// Errors of `boot`.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Boots the guest and returns when QEMU exits (Ctrl-A x, guest poweroff) or
/// a signal arrives; the namespace and QEMU are removed on every path.
pub fn boot(m: &Manifest, o: &BootOptions, cancel: &Cancel) -> Result<ExitStatus, BootError> {
    let host = Host::prepare(&o.qemu, o.accel, o.log_dir.as_deref())?;
    let ns = NetNs::create(m.guest.gateway, m.guest.prefix)?;
    let mut cfg = host.vm_config(m, "qemu", 1, TAPS[0], Console::TerminalAndLog, false);
    cfg.extra_disks.clone_from(&o.extra_disks);
    eprintln!(
        "imgrun: booting {} with {}; console log {}\r\nimgrun: the guest is {} in namespace {} \
         (try: ip netns exec {} ping {}); Ctrl-A x quits\r",
        m.name,
        host.describe(),
        cfg.console_log.display(),
        m.guest.address,
        ns.name(),
        ns.name(),
        m.guest.address
    );
    let mut vm = QemuProcess::spawn(&host.qemu, "qemu", &cfg, Some(ns.name()))?;
    let mut qmp = vm.connect_qmp(Duration::from_secs(20), cancel).ok();
    match vm.wait_or_cancel(cancel) {
        Ok(status) => Ok(status),
        Err(Interrupted) => {
            // A clean quit lets QEMU restore the terminal.
            if let Some(q) = qmp.as_mut() {
                let _ = q.quit();
            }
            let _ = vm.wait_exit(Duration::from_secs(3));
            vm.kill();
            drop(ns);
            Err(ProcessError::Interrupted(Interrupted).into())
        }
    }
}

//! `imgrun boot`: the guest under QEMU with its console on the terminal.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use guest_contract::outputs::Output;

use crate::cancel::{Cancel, Interrupted};
use crate::guest::GuestDir;
use crate::netns::{self, NetNs, TAPS};
use crate::qemu::argv::{Accel, Console};
use crate::qemu::backend::QemuError;
use crate::qemu::boot_plan::BootMode;
use crate::qemu::process::{ProcessError, QemuProcess};
use crate::qemu::session::Host;

/// Options of `boot`.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub qemu: PathBuf,
    pub accel: Option<Accel>,
    pub log_dir: Option<PathBuf>,
    /// Further read-only disks (vdb, …).
    pub extra_disks: Vec<PathBuf>,
    pub boot: BootMode,
    pub cache_dir: Option<PathBuf>,
}

/// Boots the guest and returns when QEMU exits (Ctrl-A x, guest poweroff) or
/// a signal arrives; the namespace and QEMU are removed on every path. A
/// guest without a network boots without a NIC (and needs no namespace,
/// so no CAP_NET_ADMIN). An error before QEMU starts leaves no empty log
/// directory behind.
pub fn boot(g: &GuestDir, o: &BootOptions, cancel: &Cancel) -> Result<ExitStatus, QemuError> {
    let kernel = g.path(Output::Kernel)?;
    let net = match g.manifest.guest.network {
        Some(_) => {
            let net = g.network()?;
            // Before anything is created (log directory, KVM probe).
            netns::check_capability()?;
            Some(net)
        }
        None => None,
    };
    let host = Host::prepare(
        &o.qemu,
        o.accel,
        o.log_dir.as_deref(),
        &kernel,
        &g.path(Output::Initramfs)?,
        o.boot,
        o.cache_dir.as_deref(),
    )?;
    for note in &host.boot.notes {
        eprintln!("imgrun: note: {note}\r");
    }
    let ns = match &net {
        Some((n, bridge)) => Some(
            NetNs::create(*bridge, n.address.prefix())
                .inspect_err(|_| host.discard_unused_log_dir())?,
        ),
        None => None,
    };
    let mut cfg = host.vm_config(
        g,
        "qemu",
        1,
        ns.as_ref().map(|_| TAPS[0]),
        Console::TerminalAndLog,
        false,
    )?;
    cfg.extra_disks.clone_from(&o.extra_disks);
    eprintln!(
        "imgrun: booting {} with {}; console log {}\r",
        g.name(),
        host.describe_boot(),
        cfg.console_log.display(),
    );
    match (&ns, &net) {
        (Some(ns), Some((n, _))) => eprintln!(
            "imgrun: the guest is {} in namespace {} (try: ip netns exec {} ping {}); Ctrl-A x quits\r",
            n.address.addr(),
            ns.name(),
            ns.name(),
            n.address.addr()
        ),
        _ => eprintln!("imgrun: the guest has no network; Ctrl-A x quits\r"),
    }
    let netns_name = ns.as_ref().map(|n| n.name().to_string());
    let mut vm = QemuProcess::spawn(&host.qemu, "qemu", &cfg, netns_name.as_deref())?;
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

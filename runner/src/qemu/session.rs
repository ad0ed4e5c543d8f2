//! What `boot` and the QEMU backend share: QEMU checks, accelerator
//! choice, the log directory, and one VM (process + QMP) in a namespace slot.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use guest_contract::outputs::Output;

use crate::guest::{GuestDir, GuestError};
use crate::qemu::accel;
use crate::qemu::argv::{Accel, Console, VmConfig};
use crate::qemu::boot_plan::{self, BootMode, BootPlan};
use crate::qemu::process::QemuProcess;
use crate::qemu::version::{self, QemuVersion, VersionError};
use crate::qmp::Qmp;

/// Errors preparing a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("cannot create log directory {path}: {source}")]
    LogDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Host facts for a run: which QEMU, which accelerator, where logs go.
#[derive(Debug, Clone)]
pub struct Host {
    pub qemu: PathBuf,
    pub version: QemuVersion,
    pub accel: Accel,
    pub log_dir: PathBuf,
    /// How the kernel boots (see [`boot_plan`]).
    pub boot: BootPlan,
    /// Whether `prepare` created `log_dir` (so may remove it again).
    created_log_dir: bool,
}

impl Host {
    /// Checks the QEMU version, creates the log directory, picks the
    /// accelerator (probing KVM with `kernel` when `accel` is `None`) and
    /// plans the boot (`cache_dir` keeps the unpacked PVH kernel).
    pub fn prepare(
        qemu: &Path,
        accel: Option<Accel>,
        log_dir: Option<&Path>,
        kernel: &Path,
        initrd: &Path,
        boot: BootMode,
        cache_dir: Option<&Path>,
    ) -> Result<Host, SessionError> {
        let version = version::detect(qemu)?;
        let log_dir = match log_dir {
            Some(d) => d.to_path_buf(),
            None => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                std::env::temp_dir().join(format!("imgrun-{}-{secs}", std::process::id()))
            }
        };
        let created_log_dir = !log_dir.exists();
        std::fs::create_dir_all(&log_dir).map_err(|source| SessionError::LogDir {
            path: log_dir.clone(),
            source,
        })?;
        let accel = accel.unwrap_or_else(|| accel::probe(qemu, kernel, &log_dir));
        let boot = boot_plan::plan(boot, kernel, initrd, cache_dir, qemu);
        Ok(Host {
            qemu: qemu.to_path_buf(),
            version,
            accel,
            log_dir,
            boot,
            created_log_dir,
        })
    }

    /// Removes the log directory again if `prepare` created it and nothing
    /// has been written there: for errors before any VM ran, which would
    /// otherwise leave an empty `imgrun-*` directory behind.
    pub fn discard_unused_log_dir(&self) {
        if self.created_log_dir {
            // Fails (and keeps the directory) unless it is empty.
            let _ = std::fs::remove_dir(&self.log_dir);
        }
    }

    /// Whether [`Host::prepare`] created the log directory (a run may then
    /// remove it again).
    pub fn created_log_dir(&self) -> bool {
        self.created_log_dir
    }

    /// `QEMU 10.0.2 (tcg)`.
    pub fn describe(&self) -> String {
        format!("QEMU {} ({})", self.version, self.accel.name())
    }

    /// `QEMU 10.0.2 (tcg; PVH entry, qboot)`, for the progress line.
    pub fn describe_boot(&self) -> String {
        format!(
            "QEMU {} ({}; {})",
            self.version,
            self.accel.name(),
            self.boot.describe()
        )
    }

    /// The QEMU configuration of guest `g` (its NIC on `tap`, if any): its
    /// files, memory, vCPUs, MAC and kernel command line, all as the
    /// manifest says.
    pub fn vm_config(
        &self,
        g: &GuestDir,
        name: &str,
        boot: u32,
        tap: Option<&str>,
        console: Console,
        incoming: bool,
    ) -> Result<VmConfig, GuestError> {
        let m = &g.manifest;
        Ok(VmConfig {
            accel: self.accel,
            memory_mib: m.guest.memory_mib,
            vcpus: m.guest.vcpus,
            firmware: self.boot.firmware.clone(),
            kernel: self.boot.kernel.clone(),
            initrd: self.boot.initrd.clone(),
            cmdline: self.boot.cmdline(&m.cmdline.qemu),
            rootfs: g.path(Output::RootImage)?,
            extra_disks: Vec::new(),
            writable_disks: Vec::new(),
            tap: tap.filter(|_| m.guest.network.is_some()).map(str::to_owned),
            mac: m
                .guest
                .network
                .map(|n| n.mac.to_string())
                .unwrap_or_default(),
            qmp_socket: self.log_dir.join(format!("{name}.qmp")),
            console_log: self.log_dir.join(format!("{name}-{boot}.console.log")),
            console,
            incoming,
        })
    }
}

/// A QEMU and its QMP connection. Dropping it kills the QEMU.
#[derive(Debug)]
pub struct Vm {
    pub qmp: Qmp,
    pub process: QemuProcess,
    /// Index of the namespace tap it uses.
    pub slot: usize,
}

impl Vm {
    pub fn name(&self) -> &str {
        self.process.name()
    }

    /// Asks QEMU to quit, waits briefly, then kills it by PID.
    pub fn shutdown(mut self) {
        if self.process.exited().is_none() {
            let _ = self.qmp.quit();
            let _ = self.process.wait_exit(Duration::from_secs(3));
        }
        self.process.kill();
    }
}

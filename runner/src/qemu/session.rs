//! What `boot` and `migrate-check` share: QEMU checks, accelerator choice,
//! the log directory, and one VM (process + QMP) in a namespace slot.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::manifest::Manifest;
use crate::qemu::accel;
use crate::qemu::argv::{Accel, Console, VmConfig};
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
}

impl Host {
    /// Checks the QEMU version, picks the accelerator (probing KVM when
    /// `accel` is `None`) and creates the log directory.
    pub fn prepare(
        qemu: &Path,
        accel: Option<Accel>,
        log_dir: Option<&Path>,
    ) -> Result<Host, SessionError> {
        let version = version::detect(qemu)?;
        let accel = accel.unwrap_or_else(|| accel::probe(qemu));
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
        std::fs::create_dir_all(&log_dir).map_err(|source| SessionError::LogDir {
            path: log_dir.clone(),
            source,
        })?;
        Ok(Host {
            qemu: qemu.to_path_buf(),
            version,
            accel,
            log_dir,
        })
    }

    /// `QEMU 10.0.2 (tcg)`.
    pub fn describe(&self) -> String {
        format!("QEMU {} ({})", self.version, self.accel.name())
    }

    /// The QEMU configuration of `manifest` on `tap`.
    pub fn vm_config(
        &self,
        m: &Manifest,
        name: &str,
        boot: u32,
        tap: &str,
        console: Console,
        incoming: bool,
    ) -> VmConfig {
        VmConfig {
            accel: self.accel,
            memory_mib: m.guest.memory_mib,
            vcpus: m.guest.vcpus,
            kernel: m.kernel.clone(),
            initrd: m.initrd.clone(),
            cmdline: m.qemu_cmdline(),
            rootfs: m.rootfs.clone(),
            extra_disks: Vec::new(),
            tap: Some(tap.to_string()),
            mac: m.guest.mac.to_ascii_lowercase(),
            qmp_socket: self.log_dir.join(format!("{name}.qmp")),
            console_log: self.log_dir.join(format!("{name}-{boot}.console.log")),
            console,
            incoming,
        }
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

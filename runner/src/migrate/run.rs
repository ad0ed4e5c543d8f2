//! One run of the check: its VMs, the guest client and progress.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Event, MigrateError, MigrateOptions, Transport};
use crate::cancel::Cancel;
use crate::manifest::Manifest;
use crate::netns::{NetNs, TAPS};
use crate::qemu::argv::Console;
use crate::qemu::process::{QemuProcess, tail};
use crate::qmp::QmpError;
use crate::session::{Host, Vm};
use crate::status::{GuestClient, GuestStatus};

pub(super) fn qmp_err(vm: &Vm) -> impl Fn(QmpError) -> MigrateError + '_ {
    move |source| MigrateError::Qmp {
        name: vm.name().to_string(),
        source,
    }
}

/// One run of the check.
pub(super) struct Run<'a> {
    pub(super) m: &'a Manifest,
    pub(super) o: &'a MigrateOptions,
    pub(super) host: Host,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a mut dyn FnMut(&Event),
    pub(super) boots: [u32; 2],
    pub(super) console_logs: Vec<PathBuf>,
    pub(super) guest: GuestClient,
}

const SLOT_NAMES: [&str; 2] = ["qemu-a", "qemu-b"];

impl Run<'_> {
    pub(super) fn start_vm(
        &mut self,
        ns: &NetNs,
        slot: usize,
        incoming: bool,
    ) -> Result<Vm, MigrateError> {
        self.boots[slot] += 1;
        let name = SLOT_NAMES[slot];
        let cfg = self.host.vm_config(
            self.m,
            name,
            self.boots[slot],
            TAPS[slot],
            Console::LogOnly,
            incoming,
        );
        self.console_logs.push(cfg.console_log.clone());
        let mut process = QemuProcess::spawn(&self.host.qemu, name, &cfg, Some(ns.name()))?;
        (self.progress)(&Event::VmStarted {
            name: name.to_string(),
            pid: process.pid(),
            incoming,
            console_log: cfg.console_log.clone(),
        });
        let qmp = process.connect_qmp(Duration::from_secs(20), self.cancel)?;
        Ok(Vm { qmp, process, slot })
    }

    /// Waits for the freshly booted guest's status service, failing fast if QEMU dies.
    pub(super) fn wait_guest(&mut self, vm: &mut Vm) -> Result<GuestStatus, MigrateError> {
        let start = Instant::now();
        loop {
            self.cancel.check()?;
            vm.process.ensure_alive()?;
            if let Ok(s) = self.guest.ask(Duration::from_millis(300)) {
                (self.progress)(&Event::GuestUp {
                    name: vm.name().to_string(),
                    ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
                return Ok(s);
            }
            if start.elapsed() > self.o.boot_timeout {
                return Err(MigrateError::GuestTimeout {
                    name: vm.name().to_string(),
                    secs: self.o.boot_timeout.as_secs(),
                    log: vm.process.console_log().display().to_string(),
                    console: tail(vm.process.console_log(), 3000),
                });
            }
        }
    }

    pub(super) fn probe_socket(ns: &NetNs) -> Result<UdpSocket, MigrateError> {
        ns.run_in(|| UdpSocket::bind(("0.0.0.0", 0)))?
            .map_err(MigrateError::Socket)
    }

    pub(super) fn uri(&self, index: u32) -> String {
        match self.o.transport {
            Transport::Unix => format!(
                "unix:{}",
                self.host
                    .log_dir
                    .join(format!("migrate-{index}.sock"))
                    .display()
            ),
            Transport::Tcp => format!("tcp:127.0.0.1:{}", 4440 + index % 100),
        }
    }
}

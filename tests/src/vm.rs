//! One guest under QEMU for a test: QEMU killed by PID and its network
//! namespace removed when the [`TestVm`] is dropped — on success, on a failed
//! assertion (unwinding) and on error alike.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use guest_contract::outputs::Output;
use guest_contract::status::StatusReply;
use imgrun::cancel::Cancel;
use imgrun::netns::{NetNs, TAPS};
use imgrun::qemu::argv::{Accel, Console as ConsoleMode, VmConfig};
use imgrun::qemu::boot_cache;
use imgrun::qemu::boot_plan::{self, BootMode};
use imgrun::qemu::process::{QemuProcess, tail};
use imgrun::qmp::Qmp;
use imgrun::status::udp_status;

use crate::console::{Console, ConsoleError};
use crate::env::TempDir;
use crate::guest::Guest;
use crate::ping::ping;

/// The kernel command line without `ip=`: the address then comes from the
/// init.conf the builder wrote from the recipe.
pub const BASE_CMDLINE: &str = "root=/dev/vda ro console=ttyS0 panic=-1";

/// Console lines after which waiting for a normal boot is pointless.
pub const FATAL: &[&str] = &[
    "Kernel panic",
    "cannot switch to the root filesystem",
    "no shell in the initramfs; waiting forever",
];

/// How a test wants its guest booted.
#[derive(Debug, Clone)]
pub struct Options {
    /// The whole kernel command line.
    pub cmdline: String,
    /// A virtio NIC on a tap in a fresh namespace; `false`: no NIC at all.
    pub nic: bool,
    /// Another root image instead of the guest's `rootfs.img`.
    pub rootfs: Option<PathBuf>,
    /// Read-only disks after the root disk (vdb, vdc, …).
    pub extra_disks: Vec<PathBuf>,
    /// Read-write disks after those.
    pub writable_disks: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cmdline: BASE_CMDLINE.into(),
            nic: true,
            rootfs: None,
            extra_disks: Vec::new(),
            writable_disks: Vec::new(),
        }
    }
}

/// A booted QEMU with its console. Field order is drop order: console
/// socket, QEMU (killed by PID), namespace, files.
#[derive(Debug)]
pub struct TestVm {
    pub console: Console,
    process: QemuProcess,
    qmp: Option<Qmp>,
    ns: Option<NetNs>,
    log: PathBuf,
    dir: TempDir,
}

impl TestVm {
    /// Starts QEMU (TCG) for `guest` and connects to its console.
    #[track_caller]
    pub fn boot(guest: &Guest, name: &str, o: &Options) -> TestVm {
        let m = guest.manifest();
        let dir = TempDir::new(name).expect("creating the VM's temp dir");
        let ns = o.nic.then(|| {
            let (net, gateway) = guest.net();
            NetNs::create(gateway, net.address.prefix())
                .unwrap_or_else(|e| panic!("creating the test's network namespace: {e}"))
        });
        let sock = dir.path().join("console.sock");
        let log = dir.path().join("console.log");
        let qemu = crate::env::qemu();
        // The runner's default boot (PVH entry, qboot, the initramfs
        // uncompressed, its kernel parameters): the tests boot as users do.
        let plan = boot_plan::plan(
            BootMode::Fast,
            &guest.file(Output::Kernel),
            &guest.file(Output::Initramfs),
            boot_cache::dir_from_env().as_deref(),
            &qemu,
        );
        let cfg = VmConfig {
            accel: Accel::Tcg,
            memory_mib: m.guest.memory_mib,
            vcpus: m.guest.vcpus,
            firmware: plan.firmware.clone(),
            kernel: plan.kernel.clone(),
            initrd: plan.initrd.clone(),
            cmdline: plan.cmdline(&o.cmdline),
            rootfs: o
                .rootfs
                .clone()
                .unwrap_or_else(|| guest.file(Output::RootImage)),
            extra_disks: o.extra_disks.clone(),
            writable_disks: o.writable_disks.clone(),
            tap: o.nic.then(|| TAPS[0].to_string()),
            mac: m
                .guest
                .network
                .map(|n| n.mac.to_string())
                .unwrap_or_default(),
            qmp_socket: dir.path().join("qmp.sock"),
            console_log: log.clone(),
            console: ConsoleMode::SocketAndLog(sock.clone()),
            incoming: false,
        };
        let mut process = QemuProcess::spawn(&qemu, name, &cfg, ns.as_ref().map(NetNs::name))
            .unwrap_or_else(|e| panic!("starting {}: {e}", qemu.display()));
        eprintln!(
            "imgbuild-e2e: {name}: QEMU pid {} in namespace {}; console log {}",
            process.pid(),
            ns.as_ref().map_or("(none: no NIC)", NetNs::name),
            log.display()
        );
        // The QMP socket is created with the console socket: once QMP answers,
        // the console can be connected.
        let qmp = process
            .connect_qmp(Duration::from_secs(30), &Cancel::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let console = Console::connect(&sock).unwrap_or_else(|e| panic!("{name}: {e}"));
        TestVm {
            console,
            process,
            qmp: Some(qmp),
            ns,
            log,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The whole console log (QEMU's logfile: from the first byte, even what
    /// came before the socket was connected), carriage returns removed.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default()
    }

    /// QEMU's stderr and the console tail, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- QEMU stderr ---\n{}\n--- console log tail ({}) ---\n{}",
            tail(&self.log.with_extension("stderr"), 2000),
            self.log.display(),
            crate::console::tail(&self.log(), 6000)
        )
    }

    /// Waits for `needle` on the console; panics with diagnostics if it never
    /// comes, or at once if the boot has visibly failed (see [`FATAL`]).
    #[track_caller]
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> usize {
        let start = std::time::Instant::now();
        loop {
            let step = timeout
                .saturating_sub(start.elapsed())
                .min(Duration::from_secs(1));
            match self.console.wait_for(needle, step) {
                Ok(pos) => return pos,
                Err(ConsoleError::Timeout { .. }) if start.elapsed() < timeout => {
                    let log = self.log();
                    if let Some(f) = FATAL.iter().find(|f| log.contains(**f)) {
                        panic!(
                            "waiting for {needle:?}: the boot failed ({f:?} on the console)\n{}",
                            self.diagnostics()
                        );
                    }
                }
                Err(e) => panic!("{e}\n{}", self.diagnostics()),
            }
        }
    }

    /// Waits until the console shell evaluates commands.
    #[track_caller]
    pub fn wait_for_shell(&self, timeout: Duration) {
        self.console
            .wait_for_shell(timeout)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.diagnostics()));
    }

    /// Runs a one-line command in the console shell and returns its output.
    #[track_caller]
    pub fn run(&self, command: &str, timeout: Duration) -> String {
        self.console
            .run(command, timeout)
            .unwrap_or_else(|e| panic!("running {command:?}: {e}\n{}", self.diagnostics()))
    }

    fn ns(&self) -> &NetNs {
        self.ns
            .as_ref()
            .expect("this guest was booted without a NIC, so it has no namespace")
    }

    /// The namespace's name (`None` without a NIC).
    pub fn netns_name(&self) -> Option<String> {
        self.ns.as_ref().map(|n| n.name().to_string())
    }

    /// Pings `addr` from the namespace until it answers or `timeout` passes.
    pub fn ping(&self, addr: Ipv4Addr, timeout: Duration) -> Result<Duration, String> {
        self.ns()
            .run_in(move || ping(addr, timeout))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Asks the status service at `addr:port` over UDP, from the namespace.
    pub fn udp_status(
        &self,
        addr: Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<StatusReply, String> {
        self.ns()
            .run_in(move || {
                let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
                let to = SocketAddr::V4(SocketAddrV4::new(addr, port));
                udp_status(&sock, to, "status", timeout).map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?
    }

    /// Waits up to `timeout` for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// The scratch directory of this VM (removed on drop).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Runs one QMP command (`block_resize`, …) and returns its answer.
    pub fn qmp(
        &mut self,
        command: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let q = self.qmp.as_mut().ok_or("no QMP connection")?;
        q.execute(command, Some(arguments))
            .map_err(|e| format!("QMP {command}: {e}"))
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        // Ask politely first so QEMU flushes its logs; the QemuProcess guard
        // then kills it by PID regardless.
        if self.process.exited().is_none() {
            if let Some(q) = self.qmp.as_mut() {
                let _ = q.quit();
            }
            let _ = self.process.wait_exit(Duration::from_secs(2));
        }
        self.process.kill();
    }
}

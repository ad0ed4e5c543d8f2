//! `imgrun`: boot an imgbuild guest under QEMU and check that it survives live migration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use imgrun::cancel::Cancel;
use imgrun::checks::GapLimit;
use imgrun::guest::GuestDir;
use imgrun::host_check::HostCheck;
use imgrun::libvirt::{LibvirtBackend, LibvirtConfig, LibvirtError, VirtType};
use imgrun::migrate::{self, Backend, CheckOptions, Event};
use imgrun::qemu::argv::Accel;
use imgrun::qemu::backend::{QemuBackend, QemuConfig, Transport};
use imgrun::qemu::boot_plan::BootMode;
use imgrun::report::Report;
use imgrun::workload::WorkloadSpec;
use imgrun::xen::preflight::PreflightError;
use imgrun::xen::{XenBackend, XenConfig, XenError};

mod run_cmd;
mod storage_attach_cmd;
mod storage_cmd;
use storage_cmd::StorageCommand;

#[derive(Debug, Parser)]
#[command(
    name = "imgrun",
    version,
    about = "Boot imgbuild guests and check they survive live migration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AccelArg {
    /// KVM if a quick probe shows it works, else TCG.
    Auto,
    Tcg,
    Kvm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    Unix,
    Tcp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VirtTypeArg {
    Kvm,
    Qemu,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// The output directory of `imgbuild recipe` (holds manifest.json).
    image_dir: PathBuf,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Directory for console logs and sockets (default: a new one under $TMPDIR).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// QEMU: boot as releases before the fast boot did — SeaBIOS, the
    /// bzImage and initramfs as built, the manifest's command line as it
    /// is; migrate-check also starts the destination only once the source
    /// answered and settles 3 s. The default boots the same kernel through
    /// its PVH entry (the bzImage's payload) and the initramfs uncompressed
    /// (both unpacked once into $IMGRUN_CACHE, else $XDG_CACHE_HOME/imgrun
    /// or ~/.cache/imgrun) from qboot, with parameters that skip boot-time
    /// self-tests (docs/imgrun.md).
    #[arg(long)]
    legacy_boot: bool,
}

impl Common {
    pub(crate) fn boot_mode(&self) -> BootMode {
        if self.legacy_boot {
            BootMode::Legacy
        } else {
            BootMode::Fast
        }
    }
}

/// The runner's cache (the PVH kernel, the uncompressed initramfs).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    imgrun::qemu::boot_cache::dir_from_env()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot the guest with its console on this terminal (Ctrl-A x quits).
    Boot {
        #[command(flatten)]
        common: Common,
        /// Attach a further disk image read-only (vdb, vdc, ... in order).
        #[arg(long = "disk", value_name = "IMAGE")]
        disks: Vec<PathBuf>,
    },
    /// Boot the guest, live-migrate it QEMU to QEMU, and check it survived.
    MigrateCheck {
        #[command(flatten)]
        common: Common,
        /// Migrate back and forth this many times.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Dirty this many MiB of guest memory during migration and verify them after.
        #[arg(long, value_name = "MB")]
        dirty: Option<u32>,
        /// Pause the guest before migrating (non-live baseline; no downtime limit).
        #[arg(long)]
        stop_first: bool,
        /// Largest acceptable client-seen downtime (longest probe gap), in ms;
        /// `off` reports the gap without judging it (nested emulation: a
        /// wall-clock gap measures the machine's load too) and leaves the
        /// `answered-again` check: the guest answers within the deadline
        /// once the migration ended.
        #[arg(long, value_name = "MS|off", default_value = "1000", value_parser = clap::value_parser!(GapLimit))]
        threshold_ms: GapLimit,
        /// Print the report as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Migration stream transport.
        #[arg(long, value_enum, default_value = "unix")]
        transport: TransportArg,
        /// Migration bandwidth cap in MiB/s (auto-converge is always on).
        #[arg(long, value_name = "MIB_PER_S", default_value_t = 1024)]
        max_bandwidth: u64,
        /// QEMU's downtime-limit: the longest final pause it plans for
        /// (QEMU's own default is 300; auto-converge keeps a busy guest's
        /// migration finishing under a low limit).
        #[arg(long, value_name = "MS", default_value_t = 20)]
        downtime_limit_ms: u64,
        /// Give up (and cancel) a migration after this many seconds
        /// (default: 120 under QEMU, 600 under Xen).
        #[arg(long)]
        migrate_timeout_s: Option<u64>,
        /// Use Xen's toolstack instead of QEMU: `xl create` on SRC, `xl migrate`
        /// to DST, both reached by ssh (`[user@]host`, or `localhost` for a
        /// single-host migration); same checks and report. A preflight first
        /// reads every host's `xl info` and, before anything is copied or
        /// created, refuses (exit 2) a host that cannot run or live-migrate the
        /// guest: a PV guest needs `pv` and `shadow` in `virt_caps` (log-dirty
        /// tracking), a PVH guest `hvm` and `hap` or `shadow`.
        #[arg(long, num_args = 2, value_names = ["SRC", "DST"], conflicts_with_all = ["libvirt", "hosts"])]
        xen: Option<Vec<String>>,
        /// Use libvirt: `virsh define` + `start` of the builder's domain XML
        /// on SRC_URI, `virsh migrate --live --persistent --undefinesource`
        /// to DST_URI (and back, with --repeat); same checks and report, with
        /// libvirt's job figures (`virsh domjobinfo --completed`). A xen URI
        /// (`xen+ssh://root@host1/system`) uses <name>.xen.xml, a qemu one
        /// (`qemu+ssh://host/system`, `qemu:///system`) <name>.qemu.xml. The
        /// guest stays where libvirt leaves it.
        #[arg(long, num_args = 2, value_names = ["SRC_URI", "DST_URI"], conflicts_with = "hosts")]
        libvirt: Option<Vec<String>>,
        /// libvirt, a pool: migrate the guest around the ring
        /// URI1 -> URI2 -> ... -> URIn -> URI1 with the checks after every
        /// hop; --repeat goes round again.
        #[arg(long, value_delimiter = ',', value_name = "URI1,URI2,...")]
        hosts: Option<Vec<String>>,
        /// libvirt, QEMU driver: the domain type (default: kvm where every
        /// host has KVM, else qemu, i.e. TCG, said in a note).
        #[arg(long, value_enum)]
        virt_type: Option<VirtTypeArg>,
        /// libvirt: `virsh migrate --p2p` (the source daemon connects to
        /// DST_URI itself, which must then work from the source host).
        #[arg(long)]
        p2p: bool,
        /// How long the guest may take to answer after boot.
        #[arg(long, default_value_t = 90)]
        boot_timeout_s: u64,
        /// Re-check the destination this long after completion (late
        /// crashes); default 1000 under QEMU, 3000 with --legacy-boot,
        /// --xen or --libvirt.
        #[arg(long, value_name = "MS")]
        settle_ms: Option<u64>,
        /// Shell code to start in the guest (by its console shell, as root,
        /// in /) before the first migration and keep running through every
        /// one: after each, its process must be the same one (same PID and
        /// start time), or, once it exited, have exited 0. Its output (stdout
        /// and stderr, to /run/imgrun/workload.out in the guest) ends in the
        /// report. QEMU and Xen.
        #[arg(long, value_name = "CMD")]
        workload: Option<String>,
        /// Shell code run in the guest after each migration; exit 0 passes
        /// (e.g. `wget -q -O- http://127.0.0.1:8080/`).
        #[arg(long, value_name = "CMD", requires = "workload")]
        workload_check: Option<String>,
        /// Shell code run on this machine after each migration, in the
        /// network imgrun reaches the guest from (QEMU: its private
        /// namespace), with $GUEST_IP set; exit 0 passes (e.g.
        /// `wget -q -O- http://$GUEST_IP:8080/`).
        #[arg(long, value_name = "CMD")]
        host_check: Option<String>,
    },
    /// Boot the guest, run CMD in it (as root, in /, by its console shell),
    /// stream its output (stdout and stderr merged) to stdout, power the
    /// guest off and exit with CMD's exit code (124: --timeout, 125:
    /// imgrun failed, 130: interrupted).
    Run(run_cmd::RunArgs),
    /// The guest's storage: `push` writes its image there; `attach`,
    /// `detach` and `check` a Xen host's access to it.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
}

pub(crate) fn accel(a: AccelArg) -> Option<Accel> {
    match a {
        AccelArg::Auto => None,
        AccelArg::Tcg => Some(Accel::Tcg),
        AccelArg::Kvm => Some(Accel::Kvm),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let cancel = match Cancel::on_signals() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgrun: error: installing signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli, &cancel) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("imgrun: error: {}", chain(&e));
            // 128 + SIGINT, as shells report an interrupted command.
            ExitCode::from(if cancel.is_set() { 130 } else { 2 })
        }
    }
}

/// Help, the version, or a usage error (exit 2; `imgrun run`'s own code
/// for its failures, 125, so that a command's 2 stays the command's).
fn usage(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.exit_code() == 0 {
        ExitCode::SUCCESS
    } else if std::env::args().nth(1).as_deref() == Some("run") {
        ExitCode::from(imgrun::run::EXIT_FAILED)
    } else {
        ExitCode::from(2)
    }
}

/// The error and its causes, skipping causes already spelled out in the message.
pub(crate) fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn run(cli: Cli, cancel: &Cancel) -> anyhow::Result<ExitCode> {
    match cli.command {
        // Its own exit codes, errors included.
        Command::Run(a) => Ok(run_cmd::run(a, cancel)),
        Command::Storage { command } => storage_cmd::run(command, cancel),
        Command::Boot { common: c, disks } => {
            let g = GuestDir::load(&c.image_dir)?;
            for d in &disks {
                anyhow::ensure!(d.is_file(), "--disk {}: no such file", d.display());
            }
            let opts = imgrun::boot::BootOptions {
                boot: c.boot_mode(),
                qemu: c.qemu,
                accel: accel(c.accel),
                log_dir: c.log_dir,
                cache_dir: cache_dir(),
                extra_disks: disks,
            };
            let status = imgrun::boot::boot(&g, &opts, cancel)?;
            eprintln!("imgrun: QEMU exited ({status})");
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::MigrateCheck {
            common,
            repeat,
            dirty,
            stop_first,
            threshold_ms,
            json,
            transport,
            max_bandwidth,
            downtime_limit_ms,
            migrate_timeout_s,
            xen,
            libvirt,
            hosts,
            virt_type,
            p2p,
            boot_timeout_s,
            settle_ms,
            workload,
            workload_check,
            host_check,
        } => {
            let started = Instant::now();
            let kind = if xen.is_some() {
                "xen"
            } else if libvirt.is_some() || hosts.is_some() {
                "libvirt"
            } else {
                "qemu"
            };
            let workload = match &workload {
                Some(_) if kind == "libvirt" => {
                    anyhow::bail!(
                        "--workload: the libvirt backend has no console imgrun can type into; use the QEMU or the Xen backend"
                    )
                }
                Some(w) => Some(WorkloadSpec::new(w, workload_check.as_deref())?),
                None => None,
            };
            let host_check = host_check.as_deref().map(HostCheck::new).transpose()?;
            let g = GuestDir::load(&common.image_dir)?;
            let o = CheckOptions {
                repeat,
                dirty_mb: dirty,
                stop_first,
                threshold: threshold_ms,
                boot_timeout: Duration::from_secs(boot_timeout_s),
                // xl migrate of a guest between real hosts takes longer.
                migrate_timeout: Duration::from_secs(
                    migrate_timeout_s.unwrap_or(if kind == "qemu" { 120 } else { 600 }),
                ),
                settle: Duration::from_millis(settle_ms.unwrap_or(
                    if kind == "qemu" && !common.legacy_boot {
                        1000
                    } else {
                        3000
                    },
                )),
                workload,
                host_check,
            };
            let mut progress = |e: &Event| eprintln!("imgrun: {e}");
            let lv = match (libvirt, hosts) {
                (Some(pair), _) => {
                    let [src, dst] = pair.as_slice() else {
                        anyhow::bail!("--libvirt takes two URIs: SRC_URI DST_URI");
                    };
                    Some(LibvirtConfig::pair(src, dst))
                }
                (None, Some(ring)) => Some(LibvirtConfig::ring(ring, repeat)),
                (None, None) => None,
            };
            let mut backend: Box<dyn Backend> = match (xen, lv) {
                (_, Some(mut cfg)) => {
                    cfg.virt_type = virt_type.map(|v| match v {
                        VirtTypeArg::Kvm => VirtType::Kvm,
                        VirtTypeArg::Qemu => VirtType::Qemu,
                    });
                    cfg.p2p = p2p;
                    cfg.work_dir = common.log_dir.clone();
                    cfg.qemu = common.qemu.clone();
                    let b = LibvirtBackend::new(&g, cfg, &o, cancel, &mut progress)
                        .map_err(|e| failed(json, kind, g.name(), e.into()))?;
                    Box::new(b)
                }
                (Some(hosts), None) => {
                    let [src, dst] = hosts.as_slice() else {
                        anyhow::bail!("--xen takes two hosts: SRC DST");
                    };
                    let b =
                        XenBackend::new(&g, XenConfig::new(src, dst), &o, cancel, &mut progress)
                            .map_err(|e| failed(json, kind, g.name(), e.into()))?;
                    Box::new(b)
                }
                (None, None) => {
                    let cfg = QemuConfig {
                        boot: common.boot_mode(),
                        early_destination: !common.legacy_boot,
                        cache_dir: cache_dir(),
                        qemu: common.qemu,
                        accel: accel(common.accel),
                        log_dir: common.log_dir,
                        transport: match transport {
                            TransportArg::Unix => Transport::Unix,
                            TransportArg::Tcp => Transport::Tcp,
                        },
                        max_bandwidth_mib: max_bandwidth,
                        downtime_limit: Duration::from_millis(downtime_limit_ms),
                        console_sockets: o.workload.is_some(),
                        ..QemuConfig::default()
                    };
                    let b = QemuBackend::new(&g, cfg, cancel, &mut progress)
                        .map_err(|e| failed(json, kind, g.name(), e.into()))?;
                    Box::new(b)
                }
            };
            let report =
                migrate::migrate_check(backend.as_mut(), &g, &o, cancel, &mut progress, started)
                    .map_err(|e| failed(json, kind, g.name(), e.into()));
            // Tear down (QEMUs, namespace) before printing anything.
            drop(backend);
            Ok(emit(json, &report?))
        }
    }
}

/// On an error with `--json`, CI parsing stdout still gets a verdict.
fn failed(json: bool, backend: &str, guest: &str, e: anyhow::Error) -> anyhow::Error {
    if json {
        let mut doc = serde_json::json!({
            "backend": backend,
            "guest": guest,
            "passed": false,
            "error": chain(&e),
        });
        // A refused preflight shows every host's capabilities too.
        let refusal = match (
            e.downcast_ref::<XenError>(),
            e.downcast_ref::<LibvirtError>(),
        ) {
            (Some(XenError::Preflight(PreflightError::Refused(r))), _)
            | (_, Some(LibvirtError::Preflight(PreflightError::Refused(r)))) => Some(r),
            _ => None,
        };
        if let Some(r) = refusal {
            doc["preflight"] = serde_json::to_value(r).unwrap_or_default();
        }
        println!("{doc:#}");
    }
    e
}

/// Prints the report (table or JSON) and returns its exit code.
fn emit(json: bool, report: &Report) -> ExitCode {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_table());
    }
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}

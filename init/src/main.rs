//! The guest's PID 1: stage 1 in the initramfs (`/init`), stage 2 in the
//! root image (`/sbin/init`). Nothing here returns while running as PID 1.
//!
//! Run as any other PID it is a small tool: `imgbuild-init check-config FILE`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use guest_contract::GUEST_IFACE;
use guest_contract::cmdline::Cmdline;
use guest_contract::init_config::{CONFIG_PATH, InitConfig, Restart, Stage};
use imgbuild_init::sys::real::RealSys;
use imgbuild_init::sys::{Spawn, Sys, Tty};
use imgbuild_init::{console, kmsg, stage1, stage2, status};

fn main() {
    let sys = RealSys::new();
    if sys.is_pid1() {
        pid1(sys);
    }
    std::process::exit(tool(&sys));
}

/// Not PID 1: validate a config file, so scripts can check one.
fn tool(sys: &RealSys) -> i32 {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("check-config"), Some(file)) => match sys.read_to_string(file) {
            Ok(text) => match InitConfig::parse(&text) {
                Ok(c) => {
                    print!("{}", c.render());
                    0
                }
                Err(e) => {
                    eprintln!("{file}: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("{file}: {e}");
                1
            }
        },
        _ => {
            eprintln!(
                "imgbuild-init: the guest's PID 1 (run by the kernel).\nusage: imgbuild-init check-config FILE"
            );
            2
        }
    }
}

fn pid1(mut sys: RealSys) -> ! {
    // /proc, /sys and /dev first: logging and everything else need them.
    // In stage 2 after a switch they are already mount points and skipped.
    stage1::mount_kernel_fs(&mut sys);
    // Our log lines must not be rate-limited away.
    kmsg::unlimit_devkmsg(&mut sys);
    console::ensure_stdio(&mut sys);
    let cfg = load_config(&mut sys);
    let cmdline = Cmdline::parse(&sys.read_to_string("/proc/cmdline").unwrap_or_default());
    match cfg.stage {
        Stage::Initramfs => {
            sys.log("stage 1 (initramfs)");
            let why = stage1::run(&mut sys, &cfg, &cmdline);
            sys.log(&format!("cannot switch to the root filesystem: {why}"));
            rescue(&mut sys, &cfg)
        }
        Stage::Root => {
            sys.log("stage 2 (root)");
            stage2_forever(&mut sys, &cfg, &cmdline)
        }
    }
}

fn load_config(sys: &mut RealSys) -> InitConfig {
    let guess = if std::env::args().next().as_deref() == Some("/init") {
        Stage::Initramfs
    } else {
        Stage::Root
    };
    match sys.read_to_string(CONFIG_PATH) {
        Ok(text) => match InitConfig::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                sys.log(&format!("{CONFIG_PATH}: {e}; using defaults"));
                InitConfig {
                    stage: guess,
                    ..InitConfig::default()
                }
            }
        },
        Err(e) => {
            sys.log(&format!("{CONFIG_PATH}: {e}; using defaults"));
            InitConfig {
                stage: guess,
                ..InitConfig::default()
            }
        }
    }
}

/// Stage 1 failed: a shell on the console if there is one, else wait forever.
fn rescue(sys: &mut RealSys, cfg: &InitConfig) -> ! {
    sys.block_signals();
    let mut sv = imgbuild_init::services::Supervisor::default();
    let shell = if cfg.shell.is_empty() {
        vec!["/bin/sh".to_owned()]
    } else {
        cfg.shell.clone()
    };
    if shell.first().is_some_and(|p| sys.exists(p)) {
        sys.log("starting a rescue shell on the console");
        let tty = console::console_device(sys);
        if let Some(sp) = console::shell_spawn(&shell, &tty) {
            sv.add("rescue shell", sp, Restart::Respawn);
        }
    } else {
        sys.log(
            "no shell in the initramfs; waiting forever (fix the image or the kernel command line)",
        );
    }
    supervise_forever(sys, sv)
}

fn stage2_forever(sys: &mut RealSys, cfg: &InitConfig, cmdline: &Cmdline) -> ! {
    sys.block_signals();
    sys.cad_to_signal();
    let booted = stage2::boot(sys, cfg, cmdline);

    let status_on = match cmdline.init_opt("status") {
        Some("0" | "off" | "false") => false,
        Some(_) => true,
        None => cfg.status.enabled,
    };
    if status_on {
        let iface = booted
            .net
            .as_ref()
            .map_or_else(|| GUEST_IFACE.to_owned(), |n| n.iface.clone());
        let fallback = booted
            .net
            .as_ref()
            .filter(|_| booted.net_up)
            .map(|n| vec![n.address.to_string()])
            .unwrap_or_default();
        let svc = status::Service::new(Box::new(status::SystemProbe {
            sys: RealSys::new(),
            iface,
            fallback,
        }));
        match status::start(svc, cfg.status.port) {
            Ok(()) => sys.log(&format!(
                "status service on port {} (tcp, udp)",
                cfg.status.port
            )),
            Err(e) => sys.log(&format!(
                "status service on port {} failed: {e}",
                cfg.status.port
            )),
        }
    }

    let mut sv = imgbuild_init::services::Supervisor::default();
    let shell = match cmdline.init_opt("shell") {
        Some(s) => guest_contract::words::split_words(s).unwrap_or_default(),
        None => cfg.shell.clone(),
    };
    let tty = console::console_device(sys);
    if let Some(sp) = console::shell_spawn(&shell, &tty) {
        sys.log(&format!("console {tty}"));
        sv.add("console shell", sp, Restart::Respawn);
    }
    for s in &cfg.services {
        let name = s
            .argv
            .first()
            .map_or("service", |p| p.rsplit('/').next().unwrap_or(p));
        sv.add(
            name,
            Spawn {
                argv: s.argv.clone(),
                tty: Tty::Detached,
            },
            s.restart,
        );
    }
    sys.log("boot complete");
    supervise_forever(sys, sv)
}

/// The PID 1 loop: start what is due, reap every child, act on signals.
fn supervise_forever(sys: &mut RealSys, mut sv: imgbuild_init::services::Supervisor) -> ! {
    loop {
        sv.round(sys);
    }
}

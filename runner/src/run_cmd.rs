//! `imgrun run`: the binary's part (arguments, the backend, exit codes,
//! what is printed). The work is [`imgrun::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use imgrun::cancel::Cancel;
use imgrun::console::line;
use imgrun::guest::GuestDir;
use imgrun::migrate::{CheckOptions, Event};
use imgrun::qemu::backend::{QemuBackend, QemuConfig};
use imgrun::run::{
    self, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TIMEOUT, RunEnd, RunError, RunOptions,
};
use imgrun::xen::{XenBackend, XenConfig};

use crate::Common;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Run on this Xen host instead of under QEMU: `xl create` there and
    /// the command typed into `xl console` (`[user@]host`, reached by ssh,
    /// or `localhost`).
    #[arg(long, value_name = "HOST")]
    pub xen: Option<String>,
    /// Give the command this many seconds; then it is stopped with the
    /// guest and imgrun exits 124 (with --keep: the command gets Ctrl-C and
    /// the guest stays).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Leave the guest running afterwards and print how to reach it and
    /// how to stop it.
    #[arg(long)]
    pub keep: bool,
    /// How long the guest may take to boot to its console shell.
    #[arg(long, default_value_t = 90)]
    pub boot_timeout_s: u64,
    /// The command and its arguments, after `--`: run as root in `/` by
    /// the guest's console shell, its stdout and stderr both on our stdout.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs `imgrun run` and returns its exit code (the command's, or 124,
/// 125, 130: [`imgrun::run`]).
pub fn run(a: RunArgs, cancel: &Cancel) -> ExitCode {
    let mut logs = None;
    match go(a, cancel, &mut logs) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("imgrun: error: {}", crate::chain(&e));
            if let Some(l) = logs {
                eprintln!("imgrun: logs kept in {}", l.display());
            }
            let code = match e.downcast_ref::<RunError>() {
                Some(r) => r.exit_code(),
                None if cancel.is_set() => EXIT_INTERRUPTED,
                None => EXIT_FAILED,
            };
            ExitCode::from(code)
        }
    }
}

fn print_kept(kept: Option<&Vec<String>>) {
    for l in kept.into_iter().flatten() {
        eprintln!("imgrun: {l}");
    }
}

/// `logs`: set to the log directory when it is kept for an error.
fn go(a: RunArgs, cancel: &Cancel, logs: &mut Option<PathBuf>) -> anyhow::Result<ExitCode> {
    // Before anything boots: the command must fit on the console's line.
    let script = line::argv_script(&a.command)?;
    line::check_fits(&script, "imgrun run")?;
    let g = GuestDir::load(&a.common.image_dir)?;
    let o = RunOptions {
        script,
        timeout: a.timeout.map(Duration::from_secs),
        keep: a.keep,
        boot_timeout: Duration::from_secs(a.boot_timeout_s),
    };
    let mut progress = |e: &Event| eprintln!("imgrun: {e}");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &a.xen {
        Some(host) => {
            let mut b = XenBackend::new(
                &g,
                XenConfig::run_on(host),
                &CheckOptions::default(),
                cancel,
                &mut progress,
            )?;
            run::run(&mut b, &o, cancel, &mut progress, &mut out)
        }
        None => {
            // Logs in a directory the user named stay; ours go once the command ran.
            let own_logs = a.common.log_dir.is_none();
            let cfg = QemuConfig {
                boot: a.common.boot_mode(),
                cache_dir: crate::cache_dir(),
                qemu: a.common.qemu,
                accel: crate::accel(a.common.accel),
                log_dir: a.common.log_dir,
                console_sockets: true,
                keepable: a.keep,
                needs_network: false,
                ..QemuConfig::default()
            };
            let mut b = QemuBackend::new(&g, cfg, cancel, &mut progress)?;
            let r = run::run(&mut b, &o, cancel, &mut progress, &mut out);
            match &r {
                // The command ran: nothing of the run is left behind
                // (but what a kept guest uses).
                Ok(o) if o.kept.is_none() && own_logs => b.discard_logs_on_drop(),
                Ok(_) | Err(RunError::Interrupted { kept: Some(_) }) => {}
                Err(e) if e.exit_code() == EXIT_INTERRUPTED && own_logs => b.discard_logs_on_drop(),
                Err(_) => *logs = Some(b.log_dir().to_path_buf()),
            }
            r
        }
    };
    drop(out);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            if let RunError::Interrupted { kept } = &e {
                print_kept(kept.as_ref());
            }
            return Err(e.into());
        }
    };
    print_kept(outcome.kept.as_ref());
    Ok(match outcome.end {
        RunEnd::Exited(code) => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED)),
        RunEnd::TimedOut { secs } => {
            eprintln!(
                "imgrun: the command did not finish within {secs} s (--timeout): {}",
                if outcome.kept.is_some() {
                    "interrupted (Ctrl-C), the guest kept"
                } else {
                    "stopped with the guest"
                }
            );
            ExitCode::from(EXIT_TIMEOUT)
        }
    })
}

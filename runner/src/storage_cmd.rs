//! `imgrun storage …`: the guest's storage from the command line (the
//! binary's part: arguments, the host name, printing). The work is
//! [`imgrun::storage::push`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use guest_contract::outputs::Output;
use guest_contract::storage::Iqn;
use imgrun::cancel::Cancel;
use imgrun::guest::GuestDir;
use imgrun::storage::iscsi::initiator_name;
use imgrun::storage::push::{self, Holes, PushOptions};

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Write the guest's root image (rootfs.img) onto the storage its
    /// manifest names (iSCSI LUN, NBD export, block device or file),
    /// sparsely: holes are zeroed by the server (WRITE SAME,
    /// NBD_CMD_WRITE_ZEROES), not sent.
    Push {
        /// The output directory of `imgbuild recipe` (holds manifest.json).
        image_dir: PathBuf,
        /// The destination reads as zeros already (a new LUN or export):
        /// leave the image's holes alone.
        #[arg(long, conflicts_with = "zero_holes")]
        assume_zeroed: bool,
        /// Where the destination cannot zero ranges itself, send zeros for
        /// the holes (slow: their zeros go over the wire).
        #[arg(long)]
        zero_holes: bool,
        /// Print the summary as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Give up when the server makes no progress for this long.
        #[arg(long, value_name = "S", default_value_t = 30)]
        timeout_s: u64,
        /// The iSCSI name to log in with (default:
        /// iqn.2026-12.org.imgbuild:imgrun-<hostname>).
        #[arg(long, value_name = "IQN")]
        initiator_name: Option<Iqn>,
    },
    #[command(flatten)]
    Attach(crate::storage_attach_cmd::AttachCommand),
}

/// Runs a `storage` subcommand.
pub fn run(command: StorageCommand, cancel: &Cancel) -> anyhow::Result<ExitCode> {
    match command {
        StorageCommand::Attach(c) => crate::storage_attach_cmd::run(c, cancel),
        StorageCommand::Push {
            image_dir,
            assume_zeroed,
            zero_holes,
            json,
            timeout_s,
            initiator_name: name,
        } => {
            let holes = match (assume_zeroed, zero_holes) {
                (true, _) => Holes::Skip,
                (false, true) => Holes::ZeroOrSend,
                (false, false) => Holes::Zero,
            };
            let initiator = match name {
                Some(n) => n.to_string(),
                None => initiator_name(&hostname()),
            };
            let o = PushOptions {
                holes,
                timeout: Duration::from_secs(timeout_s.max(1)),
                initiator,
            };
            let r = push_guest(&image_dir, &o, cancel);
            match r {
                Ok(s) => {
                    eprintln!("imgrun: {}", s.line());
                    if json {
                        println!("{:#}", s.to_json());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if json {
                        let doc = serde_json::json!({ "ok": false, "error": crate::chain(&e) });
                        println!("{doc:#}");
                    }
                    Err(e)
                }
            }
        }
    }
}

fn push_guest(
    dir: &std::path::Path,
    o: &PushOptions,
    cancel: &Cancel,
) -> anyhow::Result<push::PushSummary> {
    let g = GuestDir::load(dir)?;
    let image = g.path(Output::RootImage)?;
    let Some(storage) = g.manifest.storage.as_ref() else {
        anyhow::bail!(
            "{}: records no storage (written before storage kinds): the guest's disk is its image file; rebuild it with a [xen.storage] to push it",
            dir.join(guest_contract::outputs::MANIFEST_FILE).display()
        );
    };
    let mut progress = |e: &push::PushEvent| eprintln!("imgrun: {e}");
    Ok(push::push(&image, storage, o, cancel, &mut progress)?)
}

/// This machine's host name (for the default initiator name).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

//! `imgrun storage attach|detach|check`: a Xen host and the guest's shared
//! storage from the command line (the binary's part: arguments, hosts,
//! printing). The work is [`imgrun::storage::attach`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use guest_contract::outputs::{MANIFEST_FILE, Output};
use guest_contract::storage::Storage;
use imgrun::cancel::Cancel;
use imgrun::guest::GuestDir;
use imgrun::storage::attach::{self, Attached};
use imgrun::xen::host::XenHost;

#[derive(Debug, Subcommand)]
pub enum AttachCommand {
    /// Attach HOST to the guest's storage, as `migrate-check --xen` does
    /// before `xl create`: an iSCSI login, an NBD connection (and its
    /// link), or a look at the block device. Does nothing if it is attached.
    Attach {
        /// The output directory of `imgbuild recipe` (holds manifest.json).
        image_dir: PathBuf,
        /// `localhost` or `[user@]host` (ssh).
        host: String,
        /// `ssh -F` file (default: $IMGRUN_SSH_CONFIG, else the user's).
        #[arg(long)]
        ssh_config: Option<PathBuf>,
    },
    /// Detach HOST from the guest's storage, whoever attached it: iSCSI
    /// logout, or NBD disconnect and the link removed. Do not while the
    /// guest runs there.
    Detach {
        /// The output directory of `imgbuild recipe` (holds manifest.json).
        image_dir: PathBuf,
        /// `localhost` or `[user@]host` (ssh).
        host: String,
        /// `ssh -F` file (default: $IMGRUN_SSH_CONFIG, else the user's).
        #[arg(long)]
        ssh_config: Option<PathBuf>,
    },
    /// Check that each HOST reaches the guest's storage: it attaches and
    /// the device holds the image (rootfs.img's size). A host the check
    /// attached is detached again. Exit 1 if any host cannot.
    Check {
        /// The output directory of `imgbuild recipe` (holds manifest.json).
        image_dir: PathBuf,
        /// `localhost` or `[user@]host` (ssh), each checked in turn.
        #[arg(required = true)]
        hosts: Vec<String>,
        /// `ssh -F` file (default: $IMGRUN_SSH_CONFIG, else the user's).
        #[arg(long)]
        ssh_config: Option<PathBuf>,
    },
}

/// Runs an attach, detach or check.
pub fn run(command: AttachCommand, cancel: &Cancel) -> anyhow::Result<ExitCode> {
    match command {
        AttachCommand::Attach {
            image_dir,
            host,
            ssh_config,
        } => {
            let (_, storage) = load(&image_dir)?;
            let h = host_of(&host, ssh_config)?;
            let a = attach::attach(&h, &storage, cancel)?;
            println!("{}", line(&a));
            Ok(ExitCode::SUCCESS)
        }
        AttachCommand::Detach {
            image_dir,
            host,
            ssh_config,
        } => {
            let (_, storage) = load(&image_dir)?;
            let h = host_of(&host, ssh_config)?;
            let was = attach::detach(&h, &storage, cancel)?;
            println!(
                "host {}: {storage}: {}",
                h.name(),
                if was { "detached" } else { "was not attached" }
            );
            Ok(ExitCode::SUCCESS)
        }
        AttachCommand::Check {
            image_dir,
            hosts,
            ssh_config,
        } => {
            let (g, storage) = load(&image_dir)?;
            let need = g.manifest.output(Output::RootImage).map_or(0, |o| o.size);
            let mut all = true;
            for spec in &hosts {
                let h = host_of(spec, ssh_config.clone())?;
                match attach::check(&h, &storage, need, cancel) {
                    Ok(a) => {
                        println!("ok: {}", line(&a));
                        a.release(&h, cancel)?;
                    }
                    Err(e) => {
                        cancel.check()?;
                        all = false;
                        println!("FAIL: {e}");
                    }
                }
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The guest and the storage its manifest records.
fn load(dir: &Path) -> anyhow::Result<(GuestDir, Storage)> {
    let g = GuestDir::load(dir)?;
    let Some(storage) = g.manifest.storage.clone() else {
        anyhow::bail!(
            "{}: records no storage (written before storage kinds): the guest's disk is its image file, nothing to attach",
            dir.join(MANIFEST_FILE).display()
        );
    };
    Ok((g, storage))
}

fn host_of(spec: &str, ssh_config: Option<PathBuf>) -> anyhow::Result<XenHost> {
    let config = ssh_config.or_else(|| std::env::var_os("IMGRUN_SSH_CONFIG").map(PathBuf::from));
    Ok(XenHost::parse(spec, config.as_deref())?)
}

/// `host H: STORAGE: TARGET is DEVICE, N bytes (attached now)`.
fn line(a: &Attached) -> String {
    match (&a.device, a.size) {
        (Some(dev), Some(size)) => format!(
            "host {}: {}: {} is {dev}, {size} bytes ({})",
            a.host,
            a.storage,
            a.target,
            if a.made_here() {
                "attached now"
            } else {
                "already attached"
            }
        ),
        _ => format!("host {}: {}: a file, nothing to attach", a.host, a.storage),
    }
}

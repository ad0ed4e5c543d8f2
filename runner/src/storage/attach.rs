//! Attaching a Xen host to the guest's shared storage, so that the xl.cfg's
//! disk target ([`Storage::xl_target`]) is a block device there: an iSCSI
//! login (`iscsiadm`; udev makes the `/dev/disk/by-path` link), an NBD
//! connection (`nbd-client`; the runner makes the link), or a check that a
//! block device is there. Every step is an argv run on the host
//! ([`XenHost`]: this machine or ssh), so the same code serves `localhost`
//! and a remote dom0, and every step is idempotent: attaching an attached
//! host changes nothing, and [`Attached`] records what this call did so
//! that [`Attached::release`] undoes only that.
//!
//! `docs/imgrun.md` ("Shared storage") lists the same commands for doing
//! it by hand.

use std::time::Duration;

use guest_contract::storage::Storage;

use crate::cancel::Cancel;
use crate::xen::host::{HostError, Output, XenHost};
use crate::xen::shell;

pub mod hosts;
mod iscsi;
pub mod iscsiadm;
mod nbd;
pub mod nbd_client;

/// How long a command on the host may take (a login retries for a while
/// before it gives up on a portal that does not answer).
const CMD_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the LUN's by-path link may take to appear after the login.
pub const DEVICE_WAIT: Duration = Duration::from_secs(20);
/// How much of a command's stderr an error quotes.
const TAIL: usize = 600;

/// Why a host cannot reach the storage. Each names the host, the storage
/// (kind and address) and why; command failures quote stderr's tail.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{tool} not found on host {host}: install {package}")]
    ToolMissing {
        host: String,
        tool: String,
        package: &'static str,
    },
    #[error("host {host}: {server} does not offer {what} {name} (offers: {offers})")]
    NotOffered {
        host: String,
        /// `portal 10.99.0.1:3260`, `NBD server 10.99.0.1:10809`.
        server: String,
        /// `target`, `export`.
        what: &'static str,
        name: String,
        offers: String,
    },
    #[error("host {host}: {storage}: cannot reach {server}: {tail}")]
    Unreachable {
        host: String,
        storage: String,
        server: String,
        tail: String,
    },
    #[error("host {host}: {storage}: the target refused the login: {tail}")]
    LoginRefused {
        host: String,
        storage: String,
        tail: String,
    },
    /// The host lacks a kernel driver or a daemon.
    #[error("host {host}: {storage}: {why}: {tail}")]
    HostSetup {
        host: String,
        storage: String,
        why: String,
        tail: String,
    },
    #[error("host {host}: {storage}: {device} {why}")]
    NoDevice {
        host: String,
        storage: String,
        device: String,
        why: String,
    },
    #[error(
        "host {host}: {storage}: {device} holds {size} bytes, less than the image's {need} bytes (was the image pushed to a LUN that small?)"
    )]
    TooSmall {
        host: String,
        storage: String,
        device: String,
        size: u64,
        need: u64,
    },
    #[error("host {host}: {storage}: `{cmd}` failed: {tail}")]
    Command {
        host: String,
        storage: String,
        cmd: String,
        tail: String,
    },
    #[error(transparent)]
    Host(#[from] HostError),
}

/// What this call did on the host, that [`Attached::release`] undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Made {
    /// Logged in to the iSCSI target.
    IscsiLogin,
    /// Connected this NBD device and made the link.
    NbdConnect { dev: String },
}

/// A host attached to the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The host's name.
    pub host: String,
    pub storage: Storage,
    /// The xl.cfg's disk target on that host ([`Storage::xl_target`]).
    pub target: String,
    /// The block device the target is on that host (`/dev/sdb`,
    /// `/dev/nbd0`); `None` for a file.
    pub device: Option<String>,
    /// The device's size in bytes; `None` for a file.
    pub size: Option<u64>,
    made: Option<Made>,
}

impl Attached {
    /// Whether this call logged in or connected (so the host was not
    /// attached before it).
    pub fn made_here(&self) -> bool {
        self.made.is_some()
    }

    /// Undoes what this call did (nothing if the host was attached
    /// already): logs out, or disconnects and removes the link.
    pub fn release(&self, host: &XenHost, cancel: &Cancel) -> Result<(), StorageError> {
        let Some(made) = &self.made else {
            return Ok(());
        };
        let c = Ctx::new(host, &self.storage, cancel);
        match (made, &self.storage) {
            (Made::IscsiLogin, Storage::Iscsi { target, portal, .. }) => {
                c.logout(target.as_str(), &portal.to_string())
            }
            (Made::NbdConnect { dev }, Storage::Nbd { .. }) => c.nbd_disconnect(dev, &self.target),
            _ => Ok(()),
        }
    }
}

/// Attaches `host` to `storage` (idempotent; see the module docs) and
/// returns the device and its size.
pub fn attach(
    host: &XenHost,
    storage: &Storage,
    cancel: &Cancel,
) -> Result<Attached, StorageError> {
    let c = Ctx::new(host, storage, cancel);
    match storage {
        Storage::File { path } => Ok(c.attached(path.clone(), None, None, None)),
        Storage::Phy { device } => {
            if !c.run(&argv(&["test", "-b", device]), CMD_TIMEOUT)?.success {
                return Err(c.no_device(device, "is not a block device on this host"));
            }
            let (dev, size) = c.device_and_size(device)?;
            Ok(c.attached(device.clone(), Some(dev), Some(size), None))
        }
        Storage::Iscsi { target, portal, .. } => {
            c.iscsi_attach(target.as_str(), &portal.to_string(), &storage.xl_target())
        }
        Storage::Nbd { server, export } => c.nbd_attach(
            &server.host().to_string(),
            server.port(),
            export.as_str(),
            &server.to_string(),
        ),
    }
}

/// What "the host can reach the storage" means: [`attach`] succeeds and
/// the device holds at least `need` bytes (the image's size). A host this
/// call attached is released again when the size is too small.
pub fn check(
    host: &XenHost,
    storage: &Storage,
    need: u64,
    cancel: &Cancel,
) -> Result<Attached, StorageError> {
    let a = attach(host, storage, cancel)?;
    match a.size {
        Some(size) if size < need => {
            let _ = a.release(host, cancel);
            Err(StorageError::TooSmall {
                host: host.name().to_string(),
                storage: storage.to_string(),
                device: a.device.clone().unwrap_or_else(|| a.target.clone()),
                size,
                need,
            })
        }
        _ => Ok(a),
    }
}

/// Detaches `host` from `storage` whoever attached it (`imgrun storage
/// detach`): logs out of the target, or disconnects the device the link
/// points at and removes the link. Nothing for a file or block device.
/// Returns whether there was something to detach.
pub fn detach(host: &XenHost, storage: &Storage, cancel: &Cancel) -> Result<bool, StorageError> {
    let c = Ctx::new(host, storage, cancel);
    match storage {
        Storage::File { .. } | Storage::Phy { .. } => Ok(false),
        Storage::Iscsi { target, portal, .. } => {
            let portal = portal.to_string();
            let on = c
                .sessions()?
                .iter()
                .any(|r| r.target == target.as_str() && r.portal == portal);
            if on {
                c.logout(target.as_str(), &portal)?;
            }
            Ok(on)
        }
        Storage::Nbd { .. } => {
            let link = storage.xl_target();
            let st = c.nbd_state(&link)?;
            match st.linked_busy() {
                Some(dev) => c.nbd_disconnect(&dev, &link).map(|()| true),
                None => {
                    if st.link.is_some() {
                        c.must(&argv(&["rm", "-f", &link]))?;
                    }
                    Ok(false)
                }
            }
        }
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

/// The package that brings `tool` on Debian.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "iscsiadm" => "open-iscsi",
        "nbd-client" => "nbd-client",
        "modprobe" => "kmod",
        "blockdev" => "util-linux",
        _ => "coreutils",
    }
}

/// stderr's tail on one line.
fn tail(o: &Output) -> String {
    o.tail(TAIL).replace('\n', " | ")
}

/// One host, one storage, one cancel flag: the steps of an attach.
struct Ctx<'a> {
    host: &'a XenHost,
    storage: &'a Storage,
    cancel: &'a Cancel,
}

impl<'a> Ctx<'a> {
    fn new(host: &'a XenHost, storage: &'a Storage, cancel: &'a Cancel) -> Ctx<'a> {
        Ctx {
            host,
            storage,
            cancel,
        }
    }

    fn name(&self) -> String {
        self.host.name().to_string()
    }

    fn what(&self) -> String {
        self.storage.to_string()
    }

    fn attached(
        &self,
        target: String,
        device: Option<String>,
        size: Option<u64>,
        made: Option<Made>,
    ) -> Attached {
        Attached {
            host: self.name(),
            storage: self.storage.clone(),
            target,
            device,
            size,
            made,
        }
    }

    /// Runs `argv`; a tool that is not there is [`StorageError::ToolMissing`]
    /// (not found here, or exit 127 from the remote shell).
    fn run(&self, argv: &[String], timeout: Duration) -> Result<Output, StorageError> {
        let tool = argv.first().cloned().unwrap_or_default();
        let missing = || StorageError::ToolMissing {
            host: self.name(),
            package: package_of(&tool),
            tool: tool.clone(),
        };
        match self.host.run(argv, timeout, self.cancel) {
            Err(HostError::Spawn { source, .. })
                if *self.host == XenHost::Local
                    && source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(missing())
            }
            Ok(o) if o.code == Some(127) && tool != "sh" => Err(missing()),
            r => Ok(r?),
        }
    }

    /// Runs `argv`, failing on a non-zero exit.
    fn must(&self, argv: &[String]) -> Result<String, StorageError> {
        let o = self.run(argv, CMD_TIMEOUT)?;
        if o.success {
            Ok(o.stdout)
        } else {
            Err(self.failed(argv, &o))
        }
    }

    fn failed(&self, argv: &[String], o: &Output) -> StorageError {
        StorageError::Command {
            host: self.name(),
            storage: self.what(),
            cmd: shell::join(argv),
            tail: tail(o),
        }
    }

    fn no_device(&self, device: &str, why: &str) -> StorageError {
        StorageError::NoDevice {
            host: self.name(),
            storage: self.what(),
            device: device.to_string(),
            why: why.to_string(),
        }
    }

    fn setup(&self, why: &str, o: &Output) -> StorageError {
        StorageError::HostSetup {
            host: self.name(),
            storage: self.what(),
            why: why.to_string(),
            tail: tail(o),
        }
    }

    /// What `link` resolves to and its size in bytes.
    fn device_and_size(&self, link: &str) -> Result<(String, u64), StorageError> {
        let dev = self
            .must(&argv(&["readlink", "-f", link]))?
            .trim()
            .to_string();
        let a = argv(&["blockdev", "--getsize64", link]);
        let out = self.must(&a)?;
        let size = out
            .trim()
            .parse::<u64>()
            .map_err(|_| StorageError::Command {
                host: self.name(),
                storage: self.what(),
                cmd: shell::join(&a),
                tail: format!("not a size: {:?}", out.trim()),
            })?;
        Ok((dev, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages() {
        assert_eq!(package_of("iscsiadm"), "open-iscsi");
        assert_eq!(package_of("nbd-client"), "nbd-client");
        assert_eq!(package_of("blockdev"), "util-linux");
    }

    #[test]
    fn a_file_needs_nothing_and_a_missing_device_is_named() {
        let c = Cancel::default();
        let f = Storage::File {
            path: "/srv/out/g/rootfs.img".into(),
        };
        let a = attach(&XenHost::Local, &f, &c).unwrap();
        assert_eq!(
            (a.target.as_str(), a.size, a.made_here()),
            ("/srv/out/g/rootfs.img", None, false)
        );
        assert!(!detach(&XenHost::Local, &f, &c).unwrap());
        let p = Storage::Phy {
            device: "/dev/imgrun-no-such-device".into(),
        };
        let e = attach(&XenHost::Local, &p, &c).unwrap_err().to_string();
        assert_eq!(
            e,
            "host localhost: phy /dev/imgrun-no-such-device: /dev/imgrun-no-such-device is not a block device on this host"
        );
    }

    #[test]
    fn a_block_device_too_small_is_refused() {
        let Some(dev) = ["/dev/vda", "/dev/sda", "/dev/loop0"]
            .into_iter()
            .find(|d| {
                std::process::Command::new("blockdev")
                    .args(["--getsize64", d])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        else {
            eprintln!("no readable block device here: skipped");
            return;
        };
        let c = Cancel::default();
        let p = Storage::Phy { device: dev.into() };
        let a = check(&XenHost::Local, &p, 0, &c).unwrap();
        let size = a.size.unwrap();
        let e = check(&XenHost::Local, &p, size + 1, &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "holds {size} bytes, less than the image's {} bytes",
                size + 1
            )),
            "{e}"
        );
    }

    #[test]
    fn a_missing_tool_says_what_to_install() {
        let (s, cancel) = (Storage::File { path: "/x".into() }, Cancel::default());
        let c = Ctx::new(&XenHost::Local, &s, &cancel);
        let e = c
            .run(&argv(&["imgrun-no-such-tool"]), CMD_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "imgrun-no-such-tool not found on host localhost: install coreutils"
        );
    }
}

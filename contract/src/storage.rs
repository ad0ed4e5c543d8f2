//! Where the guest's root disk lives, as every Xen host sees it: a file, a
//! block device, an iSCSI LUN or an NBD export — one type, [`Storage`], for
//! the recipe (`[xen.storage]`), the manifest (`storage`), the xl.cfg's
//! `disk =` target and the runner, which attaches each host to the storage
//! before `xl create` and `xl migrate`.
//!
//! Every kind is given to Xen the same way, as a raw disk whose `target=`
//! is a path on the host ([`Storage::xl_target`]): a file (xl attaches it
//! through a loop device) or a block device (xl uses it as `phy`). For
//! iSCSI and NBD that block device is the one the runner made appear on
//! the host, at a name that is the same on every host. Xen's own hotplug
//! scripts are not used: `block-iscsi` logs in to LUN 0 only (it finds the
//! device by `iscsi-<iqn>-lun-0`), refuses to log in when a session to the
//! target already exists (which breaks a localhost migration, where the
//! old and the new domain are on one host) and looks the device up under
//! `/dev/disk/by-path` anyway; `block-nbd` is from the xend era: it takes
//! the server and port as script arguments, which libxl does not pass,
//! and connects without an export name.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::net::ValueError;

mod export;
mod iqn;
mod portal;

pub use export::{MAX_LEN as MAX_EXPORT_LEN, NbdExport};
pub use iqn::{Iqn, MAX_LEN as MAX_IQN_LEN};
pub use portal::{ISCSI_PORT, NBD_PORT, Portal, PortalHost};

/// Where udev links a SCSI disk by its transport path, on every host.
pub const BY_PATH_DIR: &str = "/dev/disk/by-path";
/// Where the runner links, on each host, the `/dev/nbdN` it connected to
/// an NBD export: `<dir>/<host>_<port>_<export>`.
pub const NBD_LINK_DIR: &str = "/run/imgrun/nbd";
/// The highest LUN we accept: 255, the last of SAM's peripheral device
/// addressing, where Linux's LUN number (the `-lun-N` of the by-path name)
/// is the target's. Above it targets use flat addressing and Linux numbers
/// the LUN `0x4000 + N`, which a recipe should not have to know.
pub const MAX_LUN: u16 = 255;

/// The guest's root disk as every Xen host reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Storage {
    /// An image file, at the same absolute path on every Xen host. Whether
    /// the hosts share it (NFS, 9p, …) imgbuild cannot tell.
    File {
        /// Absolute path.
        path: String,
    },
    /// A block device at the same absolute path on every Xen host (a SAN
    /// LUN the hosts already see, a DRBD device, …).
    Phy {
        /// Absolute path, e.g. `/dev/mapper/guest-root`.
        device: String,
    },
    /// An iSCSI LUN, which the runner logs each host in to.
    Iscsi {
        /// The target's name.
        target: Iqn,
        /// The portal, an IP literal: the host's by-path name of the LUN is
        /// made of the address the session connected to.
        portal: SocketAddr,
        /// The LUN, 0 to [`MAX_LUN`].
        lun: u16,
    },
    /// An NBD export, which the runner connects each host to.
    Nbd {
        /// The server: host (IP or DNS name) and port (default [`NBD_PORT`]).
        server: Portal,
        /// The export's name.
        export: NbdExport,
    },
}

/// The kinds of [`Storage`], as the recipe's `kind =` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// [`Storage::File`]
    File,
    /// [`Storage::Phy`]
    Phy,
    /// [`Storage::Iscsi`]
    Iscsi,
    /// [`Storage::Nbd`]
    Nbd,
}

impl StorageKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [StorageKind; 4] = [
        StorageKind::File,
        StorageKind::Phy,
        StorageKind::Iscsi,
        StorageKind::Nbd,
    ];

    /// `file`, `phy`, `iscsi` or `nbd`.
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::File => "file",
            StorageKind::Phy => "phy",
            StorageKind::Iscsi => "iscsi",
            StorageKind::Nbd => "nbd",
        }
    }

    /// `a` or `an`, as English puts it before [`StorageKind::name`].
    pub fn article(self) -> &'static str {
        match self {
            StorageKind::File | StorageKind::Phy => "a",
            StorageKind::Iscsi | StorageKind::Nbd => "an",
        }
    }

    /// The keys this kind has besides `kind`, in the order the docs list them.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            StorageKind::File => &["path"],
            StorageKind::Phy => &["device"],
            StorageKind::Iscsi => &["target", "portal", "lun"],
            StorageKind::Nbd => &["server", "export"],
        }
    }

    /// The kind `key` belongs to, if any kind has it.
    pub fn of_key(key: &str) -> Option<StorageKind> {
        StorageKind::ALL
            .into_iter()
            .find(|k| k.keys().contains(&key))
    }
}

impl FromStr for StorageKind {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<StorageKind, ValueError> {
        StorageKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = StorageKind::ALL.iter().map(|k| k.name()).collect();
                ValueError(format!(
                    "`{s}` is not a storage kind; one of: {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks a file or device path as it stands in an xl.cfg disk spec
/// (`'…, target=<path>'`, in single quotes): absolute, without quotes or
/// control characters. Commas are fine: `target=` is the spec's last
/// parameter and takes the rest of it (xl-disk-configuration(5)).
pub fn check_host_path(p: &str) -> Result<(), ValueError> {
    if p.starts_with('/') && !p.contains(['\'', '"']) && !p.contains(char::is_control) {
        Ok(())
    } else {
        Err(ValueError(format!(
            "`{p}` must be an absolute path without quotes or control characters"
        )))
    }
}

/// Checks an iSCSI LUN number.
pub fn check_lun(lun: i64) -> Result<u16, ValueError> {
    u16::try_from(lun)
        .ok()
        .filter(|l| *l <= MAX_LUN)
        .ok_or_else(|| {
            ValueError(format!(
                "LUN {lun} is out of range: 0 to {MAX_LUN} (Linux numbers higher LUNs differently from the target)"
            ))
        })
}

/// Parses an iSCSI portal: an IP literal with an optional port (default
/// [`ISCSI_PORT`]). A host name is refused — see [`Storage::Iscsi`].
pub fn parse_iscsi_portal(s: &str) -> Result<SocketAddr, ValueError> {
    let p = Portal::parse(s, ISCSI_PORT)?;
    p.socket_addr().ok_or_else(|| {
        ValueError(format!(
            "`{s}`: an iSCSI portal must be an IP address, not a host name: \
             the Xen hosts find the LUN at /dev/disk/by-path/ip-<address>:<port>-iscsi-…, \
             a name made of the address the session connected to"
        ))
    })
}

impl Storage {
    /// The kind's name: `file`, `phy`, `iscsi` or `nbd`.
    pub fn kind(&self) -> &'static str {
        self.storage_kind().name()
    }

    /// The kind.
    pub fn storage_kind(&self) -> StorageKind {
        match self {
            Storage::File { .. } => StorageKind::File,
            Storage::Phy { .. } => StorageKind::Phy,
            Storage::Iscsi { .. } => StorageKind::Iscsi,
            Storage::Nbd { .. } => StorageKind::Nbd,
        }
    }

    /// Whether every Xen host reaches the same disk, so a migration must
    /// not copy it: true for `phy`, `iscsi` and `nbd`. False for a file,
    /// meaning *not known*: the runner decides as it did before storage
    /// kinds (by looking at the hosts).
    pub fn is_shared(&self) -> bool {
        !matches!(self, Storage::File { .. })
    }

    /// What follows `target=` in the xl.cfg disk spec: a path on the Xen
    /// host, the same on every host.
    ///
    /// - file: the path; phy: the device.
    /// - iscsi: udev's stable name of the LUN,
    ///   `/dev/disk/by-path/ip-<ip>:<port>-iscsi-<iqn>-lun-<lun>`, udev's
    ///   `path_id` name from the session's address, port, target name and
    ///   LUN (an IPv6 address is written compressed and without brackets,
    ///   which assumes the session reports it so; IPv4 is the tested
    ///   case). It exists
    ///   on each host the runner logged in to the target (`open-iscsi` and
    ///   udev on the host), so xl uses it as a `phy` device; see the module
    ///   documentation for why not Xen's `block-iscsi`.
    /// - nbd: `/run/imgrun/nbd/<host>_<port>_<export>` ([`NBD_LINK_DIR`]),
    ///   a link the runner makes on each host to the `/dev/nbdN` it
    ///   connected to the export (`nbd-client` and the `nbd` module on the
    ///   host): which `nbdN` is free differs from host to host, the link's
    ///   name does not.
    pub fn xl_target(&self) -> String {
        match self {
            Storage::File { path } => path.clone(),
            Storage::Phy { device } => device.clone(),
            Storage::Iscsi {
                target,
                portal,
                lun,
            } => format!(
                "{BY_PATH_DIR}/ip-{}:{}-iscsi-{target}-lun-{lun}",
                portal.ip(),
                portal.port()
            ),
            Storage::Nbd { server, export } => format!(
                "{NBD_LINK_DIR}/{}_{}_{export}",
                server.host(),
                server.port()
            ),
        }
    }

    /// Checks what the types do not: a file's or device's path
    /// ([`check_host_path`]) and the LUN ([`MAX_LUN`]). The builder, the
    /// manifest and [`StorageKeys::check`] never make a storage this refuses.
    pub fn check(&self) -> Result<(), ValueError> {
        match self {
            Storage::File { path } => check_host_path(path),
            Storage::Phy { device } => check_host_path(device),
            Storage::Iscsi { lun, .. } => check_lun(i64::from(*lun)).map(drop),
            Storage::Nbd { .. } => Ok(()),
        }
    }
}

impl fmt::Display for Storage {
    /// One line for people: `iscsi iqn.…:busybox at 10.99.0.1:3260, LUN 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::File { path } => write!(f, "file {path}"),
            Storage::Phy { device } => write!(f, "phy {device}"),
            Storage::Iscsi {
                target,
                portal,
                lun,
            } => write!(f, "iscsi {target} at {portal}, LUN {lun}"),
            Storage::Nbd { server, export } => write!(f, "nbd export {export} at {server}"),
        }
    }
}

/// A storage as flat keys, one field per key of any kind: what the
/// recipe's `[xen.storage]` table and the manifest's `storage` object hold
/// (its JSON form, with the `serde` feature). [`StorageKeys::check`] is the
/// one rule for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct StorageKeys {
    /// `file` (the default), `phy`, `iscsi` or `nbd`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub kind: Option<String>,
    /// file: the image's absolute path.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub path: Option<String>,
    /// phy: the block device's absolute path.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub device: Option<String>,
    /// iscsi: the target's IQN.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub target: Option<String>,
    /// iscsi: `ip[:port]`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub portal: Option<String>,
    /// iscsi: the LUN (default 0).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub lun: Option<i64>,
    /// nbd: `host[:port]`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub server: Option<String>,
    /// nbd: the export's name.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub export: Option<String>,
}

/// A storage key that is wrong: the key (`portal`, `kind`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct StorageKeyError {
    /// The key, without a table prefix.
    pub key: &'static str,
    /// Whether the key is missing (so there is no value to point at).
    pub missing: bool,
    /// What is wrong.
    pub message: String,
}

impl StorageKeys {
    /// The keys given, with their names, in the order of [`StorageKind::keys`].
    fn given(&self) -> [(&'static str, bool); 7] {
        [
            ("path", self.path.is_some()),
            ("device", self.device.is_some()),
            ("target", self.target.is_some()),
            ("portal", self.portal.is_some()),
            ("lun", self.lun.is_some()),
            ("server", self.server.is_some()),
            ("export", self.export.is_some()),
        ]
    }

    /// The kind (`file` when none is given), if it is one and no key of
    /// another kind is given ("`lun` is an iscsi key; this storage is
    /// nbd"): the first half of [`StorageKeys::check`].
    pub fn check_kind(&self) -> Result<StorageKind, StorageKeyError> {
        let kind = match &self.kind {
            None => StorageKind::File,
            Some(k) => k.parse().map_err(|e: ValueError| bad("kind", e.0))?,
        };
        for (key, given) in self.given() {
            let Some(owner) = StorageKind::of_key(key).filter(|o| *o != kind && given) else {
                continue;
            };
            return Err(bad(
                key,
                format!(
                    "`{key}` is {} {owner} key; this storage is {kind}",
                    owner.article()
                ),
            ));
        }
        Ok(kind)
    }

    /// The storage these keys describe. Refused, in this order: an unknown
    /// kind or a key of another kind ([`StorageKeys::check_kind`]); a
    /// missing key (every key but `lun`, which defaults to 0, is required —
    /// the recipe fills in a file's default path first); a value that does
    /// not parse.
    pub fn check(self) -> Result<Storage, StorageKeyError> {
        let at = |key: &'static str| move |e: ValueError| bad(key, e.0);
        let kind = self.check_kind()?;
        let need = |v: Option<String>, key: &'static str| {
            v.ok_or_else(|| StorageKeyError {
                key,
                missing: true,
                message: format!("a storage of kind {kind} needs `{key}`"),
            })
        };
        let storage = match kind {
            StorageKind::File => {
                let path = need(self.path, "path")?;
                check_host_path(&path).map_err(at("path"))?;
                Storage::File { path }
            }
            StorageKind::Phy => {
                let device = need(self.device, "device")?;
                check_host_path(&device).map_err(at("device"))?;
                Storage::Phy { device }
            }
            StorageKind::Iscsi => {
                let target = need(self.target, "target")?;
                let portal = need(self.portal, "portal")?;
                Storage::Iscsi {
                    target: target.parse().map_err(at("target"))?,
                    portal: parse_iscsi_portal(&portal).map_err(at("portal"))?,
                    lun: check_lun(self.lun.unwrap_or(0)).map_err(at("lun"))?,
                }
            }
            StorageKind::Nbd => {
                let server = need(self.server, "server")?;
                let export = need(self.export, "export")?;
                Storage::Nbd {
                    server: Portal::parse(&server, NBD_PORT).map_err(at("server"))?,
                    export: export.parse().map_err(at("export"))?,
                }
            }
        };
        Ok(storage)
    }
}

fn bad(key: &'static str, message: String) -> StorageKeyError {
    StorageKeyError {
        key,
        missing: false,
        message,
    }
}

impl From<&Storage> for StorageKeys {
    /// Every key written, ports and the LUN included.
    fn from(s: &Storage) -> StorageKeys {
        let mut k = StorageKeys {
            kind: Some(s.kind().to_owned()),
            ..StorageKeys::default()
        };
        match s {
            Storage::File { path } => k.path = Some(path.clone()),
            Storage::Phy { device } => k.device = Some(device.clone()),
            Storage::Iscsi {
                target,
                portal,
                lun,
            } => {
                k.target = Some(target.to_string());
                k.portal = Some(portal.to_string());
                k.lun = Some(i64::from(*lun));
            }
            Storage::Nbd { server, export } => {
                k.server = Some(server.to_string());
                k.export = Some(export.to_string());
            }
        }
        k
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Storage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StorageKeys::from(self).serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Storage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Storage, D::Error> {
        StorageKeys::deserialize(d)?
            .check()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;

//! The recipe: one TOML file describing a guest. [`Recipe::load`] parses and
//! validates it; every error names the file, line, column and key.

mod error;
mod files;
mod inputs;
mod net;
mod raw;
mod serde_words;
mod storage;
mod toml_place;
pub mod units;
mod validate;

use std::path::{Path, PathBuf};

use guest_contract::cmdline::{KernelCmdline, Platform};
use guest_contract::init_config::Service;
use guest_contract::kernel_ip::{IpParam, StaticIp};
use guest_contract::storage::Storage;
use guest_contract::{GUEST_IFACE, GuestType, Hostname, Ipv4Cidr, Mac};

pub use error::{Diag, Loc, RecipeError};
pub use files::{ExtraFile, FileKind, normalise_dest};
pub use net::default_mac;

/// A value with the place in the recipe it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub loc: Loc,
}

/// A checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe file as given.
    pub file: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// Error context for later (build-time) errors.
    pub diag: Diag,
    /// `[guest]`
    pub guest: Guest,
    /// `[inputs]`
    pub inputs: Inputs,
    /// `[rootfs]`
    pub rootfs: Rootfs,
    /// `[modules]`
    pub modules: Modules,
    /// `[network]`, if any.
    pub network: Option<Network>,
    /// `[xen]`
    pub xen: Xen,
    /// `[init]`
    pub init: Init,
    /// What builds but may not be what was meant (files hidden at run
    /// time, …), each at its place in the recipe.
    pub warnings: Vec<RecipeError>,
}

/// `[guest]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// Domain name; also the output directory name.
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Guest hostname (default: the name).
    pub hostname: Hostname,
}

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Debian package, fetched with `apt-get download`.
    Package {
        /// Package name.
        name: String,
        /// Exact version, if pinned.
        version: Option<String>,
    },
    /// A local file or directory (absolute).
    Path {
        /// The kernel image, the busybox binary, or an unpacked package root.
        path: PathBuf,
        /// For a kernel file: its `/lib/modules/<kver>` tree.
        modules: Option<PathBuf>,
    },
}

/// `[inputs]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The kernel and its modules.
    pub kernel: Located<Input>,
    /// The busybox binary.
    pub busybox: Located<Input>,
}

/// Root image size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Contents plus headroom.
    Auto,
    /// Exactly this many bytes.
    Fixed(u64),
}

/// `[rootfs]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// A tar archive (plain, gzip, xz or zstd) laid down first, under
    /// everything else: absolute path on the build host.
    pub base: Option<Located<PathBuf>>,
    /// Image size.
    pub size: Located<Size>,
    /// Filesystem label (at most 16 bytes).
    pub label: String,
    /// Mount the root read-write (`rw` on the kernel command line).
    pub writable: bool,
    /// Extra files, in recipe order.
    pub files: Vec<Located<ExtraFile>>,
}

/// `[modules]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modules {
    /// Modules the init loads from the root filesystem.
    pub load: Vec<Located<String>>,
    /// Where `load` was written; `None`: the default list.
    pub load_key: Option<Loc>,
    /// Modules the initramfs loads to reach the root device.
    pub initramfs: Vec<Located<String>>,
    /// Where `initramfs` was written; `None`: the default list.
    pub initramfs_key: Option<Loc>,
}

/// The initramfs modules without `[modules] initramfs`: the block drivers
/// of the root disk under Xen (`xvda`) and QEMU (`vda`, whose transport is
/// virtio_pci).
pub const DEFAULT_INITRAMFS_MODULES: [&str; 3] = ["xen-blkfront", "virtio_blk", "virtio_pci"];
/// The modules the init loads without `[modules] load`, for a guest with a
/// `[network]`: the NIC drivers under Xen and QEMU.
pub const DEFAULT_NETWORK_MODULES: [&str; 3] = ["xen-netfront", "virtio_net", "virtio_pci"];

/// `[network]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// eth0's address and prefix.
    pub address: Ipv4Cidr,
    /// Default gateway.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// eth0's MAC (default: derived from the guest name).
    pub mac: Mac,
}

/// `[xen]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xen {
    /// The domain's type (`type`): PV (the default) or PVH, one of
    /// [`GuestType::WRITTEN`].
    pub guest_type: GuestType,
    /// Bridge the vif joins.
    pub bridge: String,
    /// Where the root disk lives on the Xen hosts (`[xen.storage]`, or
    /// `disk_target`, its short form for a file); `None` = a file, the
    /// absolute path of the output's rootfs.img ([`Xen::storage_in`]).
    pub storage: Option<Storage>,
    /// Action on guest poweroff.
    pub on_poweroff: String,
    /// Action on guest reboot.
    pub on_reboot: String,
    /// Action on guest crash.
    pub on_crash: String,
}

impl Xen {
    /// The root disk's storage for a build whose root image is
    /// `rootfs_img` (an absolute path): the recipe's, or a file there.
    pub fn storage_in(&self, rootfs_img: &Path) -> Storage {
        self.storage.clone().unwrap_or_else(|| Storage::File {
            path: rootfs_img.display().to_string(),
        })
    }
}

/// `[init]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// The console shell command.
    pub shell: Located<String>,
    /// Seconds the initramfs waits for the root device.
    pub root_wait_secs: u32,
    /// `[[init.services]]`, in order.
    pub services: Vec<Located<Service>>,
    /// Whether the status service runs.
    pub status_enabled: bool,
    /// Its port.
    pub status_port: u16,
}

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn load(file: &Path) -> Result<Recipe, RecipeError> {
        let bytes = std::fs::read(file).map_err(|e| RecipeError {
            file: file.to_path_buf(),
            loc: Loc::default(),
            key: String::new(),
            message: format!("cannot read recipe: {e}"),
        })?;
        // Read as bytes so that a byte that is not UTF-8 is named with its
        // place (line and column counted in the valid text before it).
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            RecipeError {
                file: file.to_path_buf(),
                loc: Loc::of_offset(valid, valid.len()),
                key: String::new(),
                message: format!(
                    "the recipe is not UTF-8 text: byte 0x{:02X}",
                    bytes[e.valid_up_to()]
                ),
            }
        })?;
        Recipe::parse(file, text)
    }

    /// Validates recipe text; `file` names it in errors and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Recipe, RecipeError> {
        validate::validate(file, text)
    }

    /// An error about something at `loc` in this recipe.
    pub fn error_at(&self, loc: Loc, key: &str, message: impl Into<String>) -> RecipeError {
        self.diag.at_loc(loc, key, message)
    }

    /// The kernel's `ip=` for this guest, if it has a network.
    pub fn kernel_ip(&self) -> Option<IpParam> {
        self.network.as_ref().map(|n| {
            IpParam::Static(StaticIp {
                address: n.address,
                gateway: n.gateway,
                hostname: Some(self.guest.hostname.to_string()),
                device: Some(GUEST_IFACE.to_owned()),
            })
        })
    }

    /// The kernel command line of this guest on `platform`.
    pub fn kernel_cmdline(&self, platform: Platform) -> String {
        let mut k = KernelCmdline::for_platform(platform, self.kernel_ip());
        k.read_write = self.rootfs.writable;
        k.to_string()
    }
}

//! The recipe as written: serde structures with spans, unknown keys refused.
//! `super::validate` turns these into a checked [`super::Recipe`].

use serde::Deserialize;
use toml::Spanned;

/// The whole recipe file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipe {
    pub guest: Spanned<RawGuest>,
    #[serde(default)]
    pub inputs: RawInputs,
    #[serde(default)]
    pub rootfs: RawRootfs,
    #[serde(default)]
    pub modules: RawModules,
    pub network: Option<Spanned<RawNetwork>>,
    #[serde(default)]
    pub xen: RawXen,
    #[serde(default)]
    pub init: RawInit,
}

/// `[guest]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    pub name: Spanned<String>,
    pub memory: Option<Spanned<toml::Value>>,
    pub vcpus: Option<Spanned<i64>>,
    pub hostname: Option<Spanned<String>>,
}

/// `[inputs]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInputs {
    pub kernel: Option<Spanned<RawInput>>,
    pub busybox: Option<Spanned<RawInput>>,
}

/// An input: `"package[=version]"` or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawInput {
    Package(String),
    Table(RawInputTable),
}

/// `{ package = "…", version = "…" }` or `{ path = "…", modules = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInputTable {
    pub package: Option<String>,
    pub version: Option<String>,
    pub path: Option<String>,
    pub modules: Option<String>,
}

/// `[rootfs]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRootfs {
    pub size: Option<Spanned<String>>,
    pub label: Option<Spanned<String>>,
    #[serde(default)]
    pub files: Vec<Spanned<RawFile>>,
}

/// `[[rootfs.files]]`: exactly one of `source`, `text`, `directory`,
/// `symlink`, `char_device`, `block_device`, `fifo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub dest: Spanned<String>,
    pub source: Option<Spanned<String>>,
    pub text: Option<Spanned<String>>,
    pub directory: Option<Spanned<bool>>,
    pub symlink: Option<Spanned<String>>,
    pub char_device: Option<Spanned<RawDevice>>,
    pub block_device: Option<Spanned<RawDevice>>,
    pub fifo: Option<Spanned<bool>>,
    pub mode: Option<Spanned<toml::Value>>,
    pub owner: Option<Spanned<String>>,
}

/// `{ major = 5, minor = 1 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub major: u32,
    pub minor: u32,
}

/// `[modules]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModules {
    #[serde(default)]
    pub load: Vec<Spanned<String>>,
    #[serde(default)]
    pub initramfs: Vec<Spanned<String>>,
}

/// `[network]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub address: Spanned<String>,
    pub gateway: Option<Spanned<String>>,
    pub mac: Option<Spanned<String>>,
}

/// `[xen]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXen {
    pub bridge: Option<Spanned<String>>,
    pub disk_target: Option<Spanned<String>>,
    pub on_poweroff: Option<Spanned<String>>,
    pub on_reboot: Option<Spanned<String>>,
    pub on_crash: Option<Spanned<String>>,
}

/// `[init]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInit {
    pub shell: Option<Spanned<String>>,
    pub root_wait: Option<Spanned<i64>>,
    #[serde(default)]
    pub services: Vec<Spanned<RawService>>,
    pub status: Option<RawStatus>,
}

/// `[[init.services]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub command: Spanned<Vec<String>>,
    pub restart: Option<Spanned<String>>,
}

/// `[init.status]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    pub enabled: Option<bool>,
    pub port: Option<Spanned<i64>>,
}

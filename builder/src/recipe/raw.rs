//! The recipe as written: serde structures with spans, unknown keys refused.
//! `super::validate` turns these into a checked [`super::Recipe`].

use serde::Deserialize;
use toml::Spanned;

/// The whole recipe file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipe {
    #[serde(deserialize_with = "table")]
    pub guest: Spanned<RawGuest>,
    #[serde(default, deserialize_with = "plain_table")]
    pub inputs: RawInputs,
    #[serde(default, deserialize_with = "plain_table")]
    pub rootfs: RawRootfs,
    #[serde(default, deserialize_with = "plain_table")]
    pub modules: RawModules,
    #[serde(default, deserialize_with = "opt_table")]
    pub network: Option<Spanned<RawNetwork>>,
    #[serde(default, deserialize_with = "plain_table")]
    pub xen: RawXen,
    #[serde(default, deserialize_with = "plain_table")]
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
///
/// Deserialised by hand (not `#[serde(untagged)]`) so that a wrong key in
/// the table is named at its place and a value of neither form says which
/// forms there are ([`INPUT_EXPECTING`]), instead of serde's "did not match
/// any variant".
#[derive(Debug)]
pub enum RawInput {
    Package(String),
    Table(RawInputTable),
}

/// What an input's deserialiser expects; `Diag::from_toml` recognises it
/// and lists the forms in the recipe's words.
pub const INPUT_EXPECTING: &str = "a package name or an input table";

impl<'de> Deserialize<'de> for RawInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawInput, D::Error> {
        struct Input;
        impl<'de> serde::de::Visitor<'de> for Input {
            type Value = RawInput;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(INPUT_EXPECTING)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawInput, E> {
                Ok(RawInput::Package(s.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<RawInput, A::Error> {
                RawInputTable::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(RawInput::Table)
            }
        }
        d.deserialize_any(Input)
    }
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
    pub base: Option<Spanned<String>>,
    pub size: Option<Spanned<String>>,
    pub label: Option<Spanned<String>>,
    pub writable: Option<Spanned<bool>>,
    #[serde(default, deserialize_with = "table_list")]
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
    #[serde(default, deserialize_with = "opt_table")]
    pub char_device: Option<Spanned<RawDevice>>,
    #[serde(default, deserialize_with = "opt_table")]
    pub block_device: Option<Spanned<RawDevice>>,
    pub fifo: Option<Spanned<bool>>,
    pub mode: Option<Spanned<toml::Value>>,
    pub dir_mode: Option<Spanned<toml::Value>>,
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
    pub load: Option<Spanned<Vec<Spanned<String>>>>,
    pub initramfs: Option<Spanned<Vec<Spanned<String>>>>,
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
    #[serde(rename = "type")]
    pub guest_type: Option<Spanned<String>>,
    pub bridge: Option<Spanned<String>>,
    pub disk_target: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "opt_table")]
    pub storage: Option<Spanned<RawStorage>>,
    pub on_poweroff: Option<Spanned<String>>,
    pub on_reboot: Option<Spanned<String>>,
    pub on_crash: Option<Spanned<String>>,
}

/// `[xen.storage]`: `kind` and that kind's keys (`guest_contract::storage`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub kind: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub device: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub portal: Option<Spanned<String>>,
    pub lun: Option<Spanned<i64>>,
    pub server: Option<Spanned<String>>,
    pub export: Option<Spanned<String>>,
}

/// `[init]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInit {
    pub shell: Option<Spanned<String>>,
    pub root_wait: Option<Spanned<i64>>,
    #[serde(default, deserialize_with = "table_list")]
    pub services: Vec<Spanned<RawService>>,
    #[serde(default, deserialize_with = "opt_plain_table")]
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

/// `T`, deserialised only from a table. serde's derive also builds a struct
/// from an array, field by field, so `[[guest]]` or `char_device = [5, 1]`
/// would be taken (or refused in terms of the fields' order); through this
/// an array is "invalid type: sequence, expected struct T", which
/// `Diag::from_toml` puts in the recipe's words.
struct TableOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TableOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TableOnly<T>, D::Error> {
        struct Table<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Table<T> {
            type Value = TableOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let name = std::any::type_name::<T>();
                write!(f, "struct {}", name.rsplit("::").next().unwrap_or(name))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(TableOnly)
            }
        }
        d.deserialize_any(Table(std::marker::PhantomData))
    }
}

fn unspan<T>(s: Spanned<TableOnly<T>>) -> Spanned<T> {
    let span = s.span();
    Spanned::new(span, s.into_inner().0)
}

fn table<'de, D, T>(d: D) -> Result<Spanned<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<TableOnly<T>>::deserialize(d).map(unspan)
}

fn opt_table<'de, D, T>(d: D) -> Result<Option<Spanned<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    table(d).map(Some)
}

fn plain_table<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    TableOnly::<T>::deserialize(d).map(|t| t.0)
}

fn opt_plain_table<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    plain_table(d).map(Some)
}

fn table_list<'de, D, T>(d: D) -> Result<Vec<Spanned<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Vec::<Spanned<TableOnly<T>>>::deserialize(d).map(|v| v.into_iter().map(unspan).collect())
}

//! `out/<name>/manifest.json`: what was built, written by the builder and
//! read by the runner — one type, [`Manifest`], for both.
//!
//! ```json
//! {
//!   "manifest_version": 1,
//!   "name": "busybox",
//!   "source_date_epoch": 0,
//!   "kernel_version": "6.1.0-56-amd64",
//!   "guest": {
//!     "hostname": "busybox", "memory_mib": 512, "vcpus": 1,
//!     "mac": "00:16:3e:5a:01:02", "address": "10.99.0.2", "prefix": 24,
//!     "gateway": "10.99.0.1", "status_port": 5115, "root_label": "busybox-root",
//!     "xen_type": "pv"
//!   },
//!   "storage": { "kind": "iscsi", "target": "iqn.2026-12.org.imgbuild:busybox", "portal": "10.99.0.1:3260", "lun": 1 },
//!   "cmdline": { "xen": "root=/dev/xvda ro console=hvc0 ip=…", "qemu": "root=/dev/vda ro console=ttyS0 ip=… panic=-1" },
//!   "outputs": [ { "role": "rootfs", "file": "rootfs.img", "size": 1073741824, "sha256": "…" }, … ]
//! }
//! ```
//!
//! `mac`, `address`, `prefix` and `gateway` are absent for a guest without
//! a network; `status_port` when the status service is off. `xen_type`
//! ([`GuestType::WRITTEN`]) is absent in a manifest written before PVH
//! guests, which are PV ([`GuestFacts::guest_type`]). `storage`
//! ([`crate::storage::StorageKeys`]: `kind` and that kind's keys) is
//! absent in a manifest written before storage kinds: its root disk is a
//! file at the xl.cfg's disk target. JSON reading
//! and writing need the `serde` feature; the checks do not.

use std::net::Ipv4Addr;

use crate::guest_type::GuestType;
use crate::hostname::Hostname;
use crate::net::{Ipv4Cidr, Mac, ValueError};
use crate::outputs::Output;
use crate::storage::Storage;

#[cfg(feature = "serde")]
mod json;

/// The manifest format this crate reads and writes.
pub const MANIFEST_VERSION: u32 = 1;
/// The least memory a guest is built or booted with, MiB.
pub const MIN_MEMORY_MIB: u32 = 32;
/// The most memory a guest is built or booted with, MiB: 512 GiB. A Linux
/// PV guest uses at most 512 GiB unless its kernel was built without
/// `CONFIG_XEN_512GB` (or booted with `xen_512gb_limit=0`); QEMU accepts
/// more, but a guest must run under both.
pub const MAX_MEMORY_MIB: u32 = 512 * 1024;

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Guest name: the Xen domain name and the output directory's name.
    pub name: String,
    /// The `SOURCE_DATE_EPOCH` of every timestamp in the outputs.
    pub source_date_epoch: i64,
    /// `uname -r` of the guest kernel.
    pub kernel_version: String,
    /// The guest as it was built.
    pub guest: GuestFacts,
    /// Where the root disk lives on the Xen hosts; `None` in a manifest
    /// from before storage kinds (a file at the xl.cfg's target, see
    /// [`Manifest::root_storage`]). The builder always records it.
    pub storage: Option<Storage>,
    /// The kernel command line per platform.
    pub cmdline: Cmdlines,
    /// Where every input came from: kernel, busybox, then the base tarball
    /// if the recipe has one.
    pub inputs: Vec<InputRecord>,
    /// The files, in [`Output::ALL`] order.
    pub outputs: Vec<OutputFile>,
}

/// One input of the build, as it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// Which input: `kernel`, `busybox`, `rootfs.base` (a base tarball).
    pub input: String,
    /// The package or file it came from.
    pub source: InputSource,
    /// The version the busybox binary reports (busybox only).
    pub busybox_version: Option<String>,
}

/// Where an input came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// A Debian package.
    Package {
        /// What the recipe asked for (`linux-image-amd64`, `busybox-static=1:1.35.0-4`).
        requested: String,
        /// The package used (a metapackage resolved to what it depends on).
        package: String,
        /// Its exact version.
        version: String,
        /// Its architecture.
        architecture: String,
        /// Lower-case hex SHA-256 of the `.deb`.
        sha256: String,
    },
    /// A file on the build host (a local `.deb`, or the kernel or busybox
    /// binary itself).
    Path {
        /// Its absolute path.
        path: String,
        /// Lower-case hex SHA-256 of the file.
        sha256: String,
    },
}

/// The guest as it was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFacts {
    /// Host name.
    pub hostname: Hostname,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// The guest interface's settings, if it has a network.
    pub network: Option<GuestNet>,
    /// The status service's port, if it runs.
    pub status_port: Option<u16>,
    /// The root filesystem's label.
    pub root_label: String,
    /// The Xen domain's type, the xl.cfg's `type`: PV or PVH; `None` in a
    /// manifest from before PVH guests, a PV guest. The builder always
    /// records it.
    pub xen_type: Option<GuestType>,
}

impl GuestFacts {
    /// The Xen domain's type: the recorded one, else PV.
    pub fn guest_type(&self) -> GuestType {
        self.xen_type.unwrap_or(GuestType::Pv)
    }
}

/// The guest interface ([`crate::GUEST_IFACE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestNet {
    /// Its MAC, the same on every host and after every migration.
    pub mac: Mac,
    /// Its address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway.
    pub gateway: Option<Ipv4Addr>,
}

/// The kernel command line the builder chose for each platform
/// ([`crate::cmdline::KernelCmdline`]); the xl.cfg has the Xen one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdlines {
    /// Under Xen.
    pub xen: String,
    /// Under QEMU.
    pub qemu: String,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// What it is.
    pub output: Output,
    /// Its name inside the output directory.
    pub file: String,
    /// Apparent size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the contents.
    pub sha256: String,
}

impl Manifest {
    /// The entry of `output`, if the manifest lists it.
    pub fn output(&self, output: Output) -> Option<&OutputFile> {
        self.outputs.iter().find(|o| o.output == output)
    }

    /// Where the root disk lives: the recorded storage, or for a manifest
    /// from before storage kinds a file at `xl_disk_target`, the first
    /// disk target of the guest's xl.cfg.
    pub fn root_storage(&self, xl_disk_target: &str) -> Storage {
        self.storage.clone().unwrap_or_else(|| Storage::File {
            path: xl_disk_target.to_owned(),
        })
    }
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not of the agreed shape.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// A key has a value the contract does not allow.
    #[error("key {key}: {message}")]
    Invalid {
        /// Dotted key, `guest.prefix`, `outputs[2].sha256`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The guest name rule (recipe `guest.name`, manifest `name`): 1 to 64 of
/// `A-Z a-z 0-9 - _ .`, not starting with `.` or `-` — it names a Xen
/// domain, a directory and a file.
pub fn check_guest_name(name: &str) -> Result<(), ValueError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ValueError(format!(
            "`{name}` is not a guest name: use 1-64 of A-Z a-z 0-9 - _ . (not starting with . or -)"
        )))
    }
}

/// Checks the guest's memory size, MiB.
pub fn check_memory_mib(mib: u64) -> Result<u32, ValueError> {
    match u32::try_from(mib) {
        Ok(m) if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&m) => Ok(m),
        Ok(m) if m < MIN_MEMORY_MIB => Err(ValueError(format!(
            "{mib} MiB is too little memory for a Linux guest (at least {MIN_MEMORY_MIB} MiB)"
        ))),
        _ => Err(ValueError(format!(
            "{mib} MiB is more memory than a guest can have: at most 512 GiB \
             (Linux PV guests are limited to 512 GiB by default, CONFIG_XEN_512GB)"
        ))),
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn sample() -> Manifest {
        Manifest {
            name: "busybox".into(),
            source_date_epoch: 0,
            kernel_version: "6.1.0-56-amd64".into(),
            guest: GuestFacts {
                hostname: "busybox".parse().unwrap(),
                memory_mib: 512,
                vcpus: 1,
                network: Some(GuestNet {
                    mac: "00:16:3e:0a:0b:0c".parse().unwrap(),
                    address: "10.99.0.2/24".parse().unwrap(),
                    gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
                }),
                status_port: Some(5115),
                root_label: "busybox-root".into(),
                xen_type: Some(GuestType::Pvh),
            },
            storage: Some(Storage::Iscsi {
                target: "iqn.2026-12.org.imgbuild:busybox".parse().unwrap(),
                portal: "10.99.0.1:3260".parse().unwrap(),
                lun: 1,
            }),
            cmdline: Cmdlines {
                xen: "root=/dev/xvda ro console=hvc0".into(),
                qemu: "root=/dev/vda ro console=ttyS0 panic=-1".into(),
            },
            inputs: vec![
                InputRecord {
                    input: "kernel".into(),
                    source: InputSource::Package {
                        requested: "linux-image-amd64".into(),
                        package: "linux-image-6.1.0-56-amd64".into(),
                        version: "6.1.158-1".into(),
                        architecture: "amd64".into(),
                        sha256: SHA.into(),
                    },
                    busybox_version: None,
                },
                InputRecord {
                    input: "busybox".into(),
                    source: InputSource::Path {
                        path: "/opt/busybox".into(),
                        sha256: SHA.into(),
                    },
                    busybox_version: Some("1.36.1".into()),
                },
            ],
            outputs: Output::ALL
                .iter()
                .map(|o| OutputFile {
                    output: *o,
                    file: o.file_name("busybox"),
                    size: 3,
                    sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                        .into(),
                })
                .collect(),
        }
    }

    fn parse(t: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_json(t)
    }

    #[test]
    fn the_runner_reads_what_the_builder_writes() {
        let m = sample();
        assert_eq!(parse(&m.to_json()), Ok(m.clone()));
        let mut bare = m;
        bare.guest.network = None;
        bare.guest.status_port = None;
        let text = bare.to_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["guest"]["mac"].is_null() && v["guest"]["status_port"].is_null());
        assert_eq!(parse(&text), Ok(bare));
    }

    #[test]
    fn json_shape() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["manifest_version"], 1);
        assert_eq!(v["guest"]["memory_mib"], 512);
        assert_eq!(v["guest"]["address"], "10.99.0.2");
        assert_eq!(v["guest"]["prefix"], 24);
        assert_eq!(v["guest"]["status_port"], 5115);
        assert_eq!(v["outputs"][2]["role"], "kernel");
        assert_eq!(v["outputs"][2]["file"], "vmlinuz");
        assert_eq!(
            v["cmdline"]["qemu"],
            "root=/dev/vda ro console=ttyS0 panic=-1"
        );
        assert_eq!(v["kernel_version"], "6.1.0-56-amd64");
        assert_eq!(v["inputs"][0]["package"], "linux-image-6.1.0-56-amd64");
        assert_eq!(v["inputs"][0]["requested"], "linux-image-amd64");
        assert_eq!(v["inputs"][1]["path"], "/opt/busybox");
        assert_eq!(v["inputs"][1]["busybox_version"], "1.36.1");
        assert!(v["inputs"][1]["version"].is_null());
        assert!(sample().to_json().ends_with("}\n"));
    }

    fn with(edit: impl Fn(&mut serde_json::Value)) -> Result<Manifest, ManifestError> {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        edit(&mut v);
        parse(&v.to_string())
    }

    fn key_of(r: Result<Manifest, ManifestError>) -> String {
        match r {
            Err(ManifestError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(
            key_of(with(|v| v["guest"]["mac"] = "00:16:3e:0a:0b".into())),
            "guest.mac"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["prefix"] = 33.into())),
            "guest.prefix"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["prefix"] = 0.into())),
            "guest.prefix"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["address"] = "10.99.0.0".into())),
            "guest.address"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["gateway"] = "10.98.0.1".into())),
            "guest.gateway"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["hostname"] = "a..b".into())),
            "guest.hostname"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["memory_mib"] = 16.into())),
            "guest.memory_mib"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["vcpus"] = 0.into())),
            "guest.vcpus"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["status_port"] = 0.into())),
            "guest.status_port"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]
                .as_object_mut()
                .unwrap()
                .remove("mac")
                .map(drop)
                .unwrap_or(()))),
            "guest.mac"
        );
        assert_eq!(key_of(with(|v| v["name"] = "../x".into())), "name");
        assert_eq!(
            key_of(with(|v| v["outputs"][1]["role"] = "disk".into())),
            "outputs[1].role"
        );
        assert_eq!(
            key_of(with(|v| v["outputs"][1]["file"] = "a/b".into())),
            "outputs[1].file"
        );
        assert_eq!(
            key_of(with(|v| v["outputs"][0]["sha256"] = "00".into())),
            "outputs[0].sha256"
        );
        assert_eq!(
            key_of(with(|v| v["outputs"][1]["role"] = "rootfs".into())),
            "outputs[1].role"
        );
        assert_eq!(
            key_of(with(|v| v["cmdline"]["qemu"] = "".into())),
            "cmdline.qemu"
        );
        assert_eq!(
            key_of(with(|v| v["inputs"][0]["sha256"] = "x".into())),
            "inputs[0].sha256"
        );
        assert_eq!(
            key_of(with(|v| v["inputs"][1]["package"] = "busybox-static".into())),
            "inputs[1].package"
        );
        assert_eq!(
            key_of(with(|v| drop(
                v["inputs"][0].as_object_mut().unwrap().remove("version")
            ))),
            "inputs[0].package"
        );
    }

    #[test]
    fn storage_is_recorded_and_optional() {
        let m = sample();
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v["storage"],
            serde_json::json!({
                "kind": "iscsi",
                "target": "iqn.2026-12.org.imgbuild:busybox",
                "portal": "10.99.0.1:3260",
                "lun": 1
            })
        );
        // A manifest from before storage kinds still loads: a file at the
        // xl.cfg's target.
        let old = with(|v| drop(v.as_object_mut().unwrap().remove("storage"))).unwrap();
        assert_eq!(old.storage, None);
        assert_eq!(
            old.root_storage("/srv/out/busybox/rootfs.img"),
            Storage::File {
                path: "/srv/out/busybox/rootfs.img".into()
            }
        );
        assert_eq!(m.root_storage("/x"), m.storage.clone().unwrap());
        let mut nbd = m;
        nbd.storage = Some(Storage::Nbd {
            server: "nas.example.org:10809".parse().unwrap(),
            export: "busybox".parse().unwrap(),
        });
        assert_eq!(parse(&nbd.to_json()), Ok(nbd.clone()));
        assert_eq!(
            key_of(with(|v| v["storage"]["portal"] = "nas:3260".into())),
            "storage.portal"
        );
        assert_eq!(
            key_of(with(|v| v["storage"]["kind"] = "nbd".into())),
            "storage.target"
        );
        assert_eq!(
            key_of(with(|v| v["storage"]["lun"] = 256.into())),
            "storage.lun"
        );
        assert_eq!(
            key_of(with(|v| drop(
                v["storage"].as_object_mut().unwrap().remove("target")
            ))),
            "storage.target"
        );
        let e = with(|v| v["storage"]["size"] = 1.into()).unwrap_err();
        assert!(matches!(e, ManifestError::Syntax { .. }), "{e:?}");
    }

    #[test]
    fn the_xen_type_is_recorded_and_optional() {
        let m = sample();
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["guest"]["xen_type"], "pvh");
        assert_eq!(m.guest.guest_type(), GuestType::Pvh);
        let mut pv = m;
        pv.guest.xen_type = Some(GuestType::Pv);
        assert_eq!(parse(&pv.to_json()), Ok(pv.clone()));
        // A manifest from before PVH guests still loads: a PV guest.
        let old = with(|v| drop(v["guest"].as_object_mut().unwrap().remove("xen_type"))).unwrap();
        assert_eq!(old.guest.xen_type, None);
        assert_eq!(old.guest.guest_type(), GuestType::Pv);
        let e = with(|v| v["guest"]["xen_type"] = "hvm".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "key guest.xen_type: `hvm` is not a guest type imgbuild writes; one of: pv, pvh"
        );
        assert_eq!(
            key_of(with(|v| v["guest"]["xen_type"] = "PV".into())),
            "guest.xen_type"
        );
        let e = with(|v| v["guest"]["xen_type"] = 1.into()).unwrap_err();
        assert!(matches!(e, ManifestError::Syntax { .. }), "{e:?}");
    }

    #[test]
    fn versions() {
        let e = with(|v| v["manifest_version"] = 2.into())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("key manifest_version: version 2"), "{e}");
        let e = with(|v| drop(v.as_object_mut().unwrap().remove("manifest_version")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("older imgbuild; rebuild"), "{e}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = parse("{\n\"name\": }").unwrap_err();
        assert!(matches!(e, ManifestError::Syntax { line: 2, .. }), "{e:?}");
        // The position is said once.
        assert_eq!(e.to_string().matches("line 2").count(), 1, "{e}");
    }

    #[test]
    fn an_older_manifest_asks_for_a_rebuild() {
        // What imgbuild wrote before the contract crate: no version, no roles.
        let old = r#"{ "name": "busybox", "source_date_epoch": 0, "kernel_version": "6.1.0-57-amd64",
          "guest": { "hostname": "busybox", "memory_mib": 512, "vcpus": 1, "xen_cmdline": "x", "root_label": "r" },
          "outputs": [ { "file": "rootfs.img", "size": 1, "sha256": "00" } ] }"#;
        let e = parse(old).unwrap_err().to_string();
        assert!(e.starts_with("key manifest_version: missing"), "{e}");
        assert!(e.contains("rebuild the guest"), "{e}");
    }

    #[test]
    fn names_and_memory() {
        for ok in ["busybox", "my_guest.v2", "a"] {
            assert!(check_guest_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_guest_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_memory_mib(512), Ok(512));
        assert!(check_memory_mib(31).is_err());
        assert!(check_memory_mib(1 << 40).is_err());
        // 512 GiB, the Linux PV limit, is the most.
        assert_eq!(check_memory_mib(512 << 10), Ok(MAX_MEMORY_MIB));
        let e = check_memory_mib((512 << 10) + 1).unwrap_err().0;
        assert!(
            e.contains("at most 512 GiB") && e.contains("CONFIG_XEN_512GB"),
            "{e}"
        );
    }
}

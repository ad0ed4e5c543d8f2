//! The manifest's JSON form: a wire struct per object, checked into the
//! typed [`Manifest`]; every error names its key.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{
    Cmdlines, GuestFacts, GuestNet, InputRecord, InputSource, MANIFEST_VERSION, Manifest,
    ManifestError, OutputFile, check_guest_name, check_memory_mib,
};
use crate::guest_type::GuestType;
use crate::hostname::Hostname;
use crate::net::{Ipv4Cidr, Mac, ValueError};
use crate::outputs::Output;
use crate::storage::StorageKeys;

/// Just the format version.
#[derive(Deserialize)]
struct Version {
    manifest_version: Option<u32>,
}

/// serde's error, its position taken out of the message (it is in the fields).
fn syntax(e: serde_json::Error) -> ManifestError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let message = text
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&text)
        .to_owned();
    ManifestError::Syntax {
        line,
        column,
        message,
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    manifest_version: Option<u32>,
    name: String,
    source_date_epoch: i64,
    kernel_version: String,
    guest: GuestWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage: Option<StorageKeys>,
    cmdline: CmdlineWire,
    inputs: Vec<InputWire>,
    outputs: Vec<OutputWire>,
}

#[derive(Serialize, Deserialize)]
struct InputWire {
    input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    busybox_version: Option<String>,
}

impl InputWire {
    fn of(r: &InputRecord) -> InputWire {
        let mut w = InputWire {
            input: r.input.clone(),
            requested: None,
            package: None,
            version: None,
            architecture: None,
            path: None,
            sha256: String::new(),
            busybox_version: r.busybox_version.clone(),
        };
        match &r.source {
            InputSource::Package {
                requested,
                package,
                version,
                architecture,
                sha256,
            } => {
                w.requested = Some(requested.clone());
                w.package = Some(package.clone());
                w.version = Some(version.clone());
                w.architecture = Some(architecture.clone());
                w.sha256.clone_from(sha256);
            }
            InputSource::Path { path, sha256 } => {
                w.path = Some(path.clone());
                w.sha256.clone_from(sha256);
            }
        }
        w
    }

    fn check(self, i: usize) -> Result<InputRecord, ManifestError> {
        let key = |k: &str| format!("inputs[{i}].{k}");
        if self.input.is_empty() {
            return Err(invalid(key("input"), "empty"));
        }
        if !is_sha256(&self.sha256) {
            return Err(invalid(key("sha256"), "expected 64 lower-case hex digits"));
        }
        let source = match (self.package, self.path) {
            (Some(package), None) => {
                let (Some(requested), Some(version), Some(architecture)) =
                    (self.requested, self.version, self.architecture)
                else {
                    return Err(invalid(
                        key("package"),
                        "a package input has requested, version and architecture",
                    ));
                };
                InputSource::Package {
                    requested,
                    package,
                    version,
                    architecture,
                    sha256: self.sha256,
                }
            }
            (None, Some(path)) => InputSource::Path {
                path,
                sha256: self.sha256,
            },
            _ => {
                return Err(invalid(
                    key("package"),
                    "give exactly one of package or path",
                ));
            }
        };
        Ok(InputRecord {
            input: self.input,
            source,
            busybox_version: self.busybox_version,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct GuestWire {
    hostname: String,
    memory_mib: u64,
    vcpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_port: Option<u16>,
    root_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xen_type: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CmdlineWire {
    xen: String,
    qemu: String,
}

#[derive(Serialize, Deserialize)]
struct OutputWire {
    role: String,
    file: String,
    size: u64,
    sha256: String,
}

impl Manifest {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let g = &self.guest;
        let net = g.network.as_ref();
        let wire = Wire {
            manifest_version: Some(MANIFEST_VERSION),
            name: self.name.clone(),
            source_date_epoch: self.source_date_epoch,
            kernel_version: self.kernel_version.clone(),
            guest: GuestWire {
                hostname: g.hostname.to_string(),
                memory_mib: u64::from(g.memory_mib),
                vcpus: g.vcpus,
                mac: net.map(|n| n.mac.to_string()),
                address: net.map(|n| n.address.addr()),
                prefix: net.map(|n| n.address.prefix()),
                gateway: net.and_then(|n| n.gateway),
                status_port: g.status_port,
                root_label: g.root_label.clone(),
                xen_type: g.xen_type.map(|t| t.word().to_owned()),
            },
            storage: self.storage.as_ref().map(StorageKeys::from),
            cmdline: CmdlineWire {
                xen: self.cmdline.xen.clone(),
                qemu: self.cmdline.qemu.clone(),
            },
            inputs: self.inputs.iter().map(InputWire::of).collect(),
            outputs: self
                .outputs
                .iter()
                .map(|o| OutputWire {
                    role: o.output.role().to_owned(),
                    file: o.file.clone(),
                    size: o.size,
                    sha256: o.sha256.clone(),
                })
                .collect(),
        };
        // Serialising plain structs of strings and numbers cannot fail.
        let mut s = serde_json::to_string_pretty(&wire).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads and checks manifest text.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        // The version first: a manifest of another format is refused for
        // that, not for the first field it lacks.
        let v: Version = serde_json::from_str(text).map_err(syntax)?;
        match v.manifest_version {
            Some(MANIFEST_VERSION) => {}
            Some(v) => {
                return Err(invalid(
                    "manifest_version",
                    format!(
                        "version {v}; this program reads version {MANIFEST_VERSION} (build the guest and run it with the same imgbuild release)"
                    ),
                ));
            }
            None => {
                return Err(invalid(
                    "manifest_version",
                    "missing: the manifest was written by an older imgbuild; rebuild the guest",
                ));
            }
        }
        let w: Wire = serde_json::from_str(text).map_err(syntax)?;
        check_guest_name(&w.name).map_err(|e| invalid("name", e.0))?;
        if w.kernel_version.is_empty() || w.kernel_version.contains(['/', ' ']) {
            return Err(invalid(
                "kernel_version",
                "expected a kernel release like 6.1.0-56-amd64",
            ));
        }
        let g = w.guest;
        let hostname: Hostname = g
            .hostname
            .parse()
            .map_err(|e: crate::ValueError| invalid("guest.hostname", e.0))?;
        let memory_mib =
            check_memory_mib(g.memory_mib).map_err(|e| invalid("guest.memory_mib", e.0))?;
        if g.vcpus == 0 {
            return Err(invalid("guest.vcpus", "must be at least 1"));
        }
        if g.status_port == Some(0) {
            return Err(invalid("guest.status_port", "0 is not a port"));
        }
        let network = network(g.mac.as_deref(), g.address, g.prefix, g.gateway)?;
        let xen_type = g
            .xen_type
            .as_deref()
            .map(GuestType::written)
            .transpose()
            .map_err(|e| invalid("guest.xen_type", e.0))?;
        let storage = w
            .storage
            .map(|s| s.check())
            .transpose()
            .map_err(|e| invalid(format!("storage.{}", e.key), e.message))?;
        for (key, v) in [
            ("cmdline.xen", &w.cmdline.xen),
            ("cmdline.qemu", &w.cmdline.qemu),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(key, "empty"));
            }
        }
        let inputs = w
            .inputs
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.check(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outputs = Vec::new();
        for (i, o) in w.outputs.into_iter().enumerate() {
            let f = output_file(i, &o.role, o.file, o.size, o.sha256)?;
            if outputs.iter().any(|x: &OutputFile| x.output == f.output) {
                return Err(invalid(
                    format!("outputs[{i}].role"),
                    format!("`{}` is listed twice", f.output),
                ));
            }
            outputs.push(f);
        }
        Ok(Manifest {
            name: w.name,
            source_date_epoch: w.source_date_epoch,
            kernel_version: w.kernel_version,
            guest: GuestFacts {
                hostname,
                memory_mib,
                vcpus: g.vcpus,
                network,
                status_port: g.status_port,
                root_label: g.root_label,
                xen_type,
            },
            storage,
            cmdline: Cmdlines {
                xen: w.cmdline.xen,
                qemu: w.cmdline.qemu,
            },
            inputs,
            outputs,
        })
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The network keys as they stand in the JSON, checked together.
fn network(
    mac: Option<&str>,
    address: Option<Ipv4Addr>,
    prefix: Option<u8>,
    gateway: Option<Ipv4Addr>,
) -> Result<Option<GuestNet>, ManifestError> {
    let (mac, address, prefix) = match (mac, address, prefix) {
        (None, None, None) => {
            return match gateway {
                None => Ok(None),
                Some(_) => Err(invalid("guest.gateway", "given without guest.address")),
            };
        }
        (Some(m), Some(a), Some(p)) => (m, a, p),
        (m, a, _) => {
            let missing = if m.is_none() {
                "guest.mac"
            } else if a.is_none() {
                "guest.address"
            } else {
                "guest.prefix"
            };
            return Err(invalid(
                missing,
                "missing: a guest network has mac, address and prefix",
            ));
        }
    };
    let mac: Mac = mac
        .parse()
        .map_err(|e: ValueError| invalid("guest.mac", e.0))?;
    let key = if prefix == 0 || prefix > 32 {
        "guest.prefix"
    } else {
        "guest.address"
    };
    let address = Ipv4Cidr::new(address, prefix).map_err(|e| invalid(key, e.0))?;
    if let Some(g) = gateway {
        address
            .check_gateway(g)
            .map_err(|e| invalid("guest.gateway", e.0))?;
    }
    Ok(Some(GuestNet {
        mac,
        address,
        gateway,
    }))
}

fn output_file(
    i: usize,
    role: &str,
    file: String,
    size: u64,
    sha256: String,
) -> Result<OutputFile, ManifestError> {
    let key = |k: &str| format!("outputs[{i}].{k}");
    let output = Output::from_role(role).ok_or_else(|| {
        let known: Vec<&str> = Output::ALL.iter().map(|o| o.role()).collect();
        invalid(
            key("role"),
            format!("`{role}` is not one of {}", known.join(", ")),
        )
    })?;
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(invalid(key("file"), format!("`{file}` is not a file name")));
    }
    if !is_sha256(&sha256) {
        return Err(invalid(key("sha256"), "expected 64 lower-case hex digits"));
    }
    Ok(OutputFile {
        output,
        file,
        size,
        sha256,
    })
}

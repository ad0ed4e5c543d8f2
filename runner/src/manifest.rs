//! `out/<name>/manifest.json`, written by the builder (see CONTRACTS.md).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading a guest's manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the agreed shape.
    #[error("{path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key has a value the runner cannot use.
    #[error("{path}: key {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    /// A file the runner needs is missing from the output directory.
    #[error("{path}: missing (the manifest lists it; was the build interrupted?)")]
    MissingFile { path: PathBuf },
}

/// The `guest` object of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct GuestSpec {
    pub hostname: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    #[serde(default = "default_status_port")]
    pub status_port: u16,
}

fn default_status_port() -> u16 {
    5115
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    name: String,
    #[serde(default)]
    kernel_version: Option<String>,
    guest: GuestSpec,
}

/// A parsed manifest together with the paths of the files the runner boots.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub kernel_version: Option<String>,
    pub guest: GuestSpec,
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub rootfs: PathBuf,
}

impl Manifest {
    /// Reads `<dir>/manifest.json` and checks the boot files exist.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let m = Manifest::parse(&text, dir, &path)?;
        for f in [&m.kernel, &m.initrd, &m.rootfs] {
            if !f.is_file() {
                return Err(ManifestError::MissingFile { path: f.clone() });
            }
        }
        Ok(m)
    }

    /// Parses manifest text; `dir` is where the outputs live, `path` names the file in errors.
    pub fn parse(text: &str, dir: &Path, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = serde_json::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let invalid = |key, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if raw.guest.prefix == 0 || raw.guest.prefix > 30 {
            return Err(invalid(
                "guest.prefix",
                format!("{} is not a usable IPv4 prefix (1..=30)", raw.guest.prefix),
            ));
        }
        if parse_mac(&raw.guest.mac).is_none() {
            return Err(invalid(
                "guest.mac",
                format!(
                    "{:?} is not a MAC address like 00:16:3e:01:02:03",
                    raw.guest.mac
                ),
            ));
        }
        if raw.guest.memory_mib < 64 {
            return Err(invalid(
                "guest.memory_mib",
                format!("{} MiB is too small to boot a kernel", raw.guest.memory_mib),
            ));
        }
        if raw.guest.vcpus == 0 {
            return Err(invalid("guest.vcpus", "must be at least 1".into()));
        }
        if network(raw.guest.address, raw.guest.prefix)
            != network(raw.guest.gateway, raw.guest.prefix)
            || raw.guest.address == raw.guest.gateway
        {
            return Err(invalid(
                "guest.gateway",
                format!(
                    "{} is not another address in {}/{}",
                    raw.guest.gateway, raw.guest.address, raw.guest.prefix
                ),
            ));
        }
        Ok(Manifest {
            name: raw.name,
            kernel_version: raw.kernel_version,
            guest: raw.guest,
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            rootfs: dir.join("rootfs.img"),
            dir: dir.to_path_buf(),
        })
    }

    /// The kernel command line for QEMU (CONTRACTS.md).
    pub fn qemu_cmdline(&self) -> String {
        let g = &self.guest;
        format!(
            "root=/dev/vda ro console=ttyS0 ip={}::{}:{}:{}:eth0:off panic=-1",
            g.address,
            g.gateway,
            netmask(g.prefix),
            g.hostname
        )
    }
}

/// The dotted netmask of a prefix length.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

fn network(a: Ipv4Addr, prefix: u8) -> u32 {
    u32::from(a) & u32::from(netmask(prefix))
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive) into bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{ "name": "busybox", "source_date_epoch": 0, "kernel_version": "6.1.0-56-amd64",
      "guest": { "hostname": "busybox", "memory_mib": 512, "vcpus": 1, "mac": "00:16:3e:0a:0b:0c",
                 "address": "10.99.0.2", "prefix": 24, "gateway": "10.99.0.1", "status_port": 5115,
                 "xen_cmdline": "x", "root_label": "busybox-root" },
      "outputs": [] }"#;

    fn parse(t: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(t, Path::new("/o"), Path::new("/o/manifest.json"))
    }

    #[test]
    fn parses_contract_example() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.guest.address, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(m.rootfs, Path::new("/o/rootfs.img"));
        assert_eq!(
            m.qemu_cmdline(),
            "root=/dev/vda ro console=ttyS0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off panic=-1"
        );
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(20), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn rejects_bad_mac_naming_key() {
        let t = GOOD.replace("00:16:3e:0a:0b:0c", "00:16:3e:0a:0b");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("guest.mac"), "{e}");
    }

    #[test]
    fn rejects_gateway_outside_subnet() {
        let t = GOOD.replace("10.99.0.1", "10.98.0.1");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("guest.gateway"), "{e}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = parse("{\n\"name\": }").unwrap_err().to_string();
        assert!(e.contains("/o/manifest.json: line 2"), "{e}");
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("00:16:3E:01:02:ff"),
            Some([0, 0x16, 0x3e, 1, 2, 0xff])
        );
        assert_eq!(parse_mac("00:16:3e:01:02:03:04"), None);
        assert_eq!(parse_mac("0:16:3e:01:02:03"), None);
    }
}

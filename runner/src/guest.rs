//! A built guest as the runner finds it: `out/<name>/` and its
//! `manifest.json` (the contract's [`Manifest`]), with the paths of the
//! files the manifest lists.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use guest_contract::manifest::{GuestNet, Manifest, ManifestError};
use guest_contract::outputs::{MANIFEST_FILE, Output};

/// Why a guest directory cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The manifest is not what the builder writes.
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    /// The manifest does not list a file the runner needs.
    #[error("{path}: lists no {output} output (was it written by this imgbuild?)")]
    NotListed { path: PathBuf, output: Output },
    /// A file the manifest lists is not there.
    #[error("{path}: missing (the manifest lists it; was the build interrupted?)")]
    MissingFile { path: PathBuf },
    /// The guest lacks what a check needs.
    #[error("{path}: {what}")]
    Unusable { path: PathBuf, what: String },
}

/// The address imgrun puts on the bridge in front of the guest: its gateway,
/// or when it has none the highest host address of its subnet that is not
/// the guest's (`10.99.0.254` for `10.99.0.2/24`). `net`'s prefix must be at
/// most 30 ([`GuestDir::network`] checks), so that address exists.
pub fn bridge_address(net: &GuestNet) -> Ipv4Addr {
    if let Some(gateway) = net.gateway {
        return gateway;
    }
    let prefix = u32::from(net.address.prefix());
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let addr = u32::from(net.address.addr());
    let highest = (addr | !mask).wrapping_sub(1);
    Ipv4Addr::from(if highest == addr {
        highest.wrapping_sub(1)
    } else {
        highest
    })
}

/// A guest's output directory and its manifest.
#[derive(Debug, Clone)]
pub struct GuestDir {
    /// The directory.
    pub dir: PathBuf,
    /// What the builder wrote.
    pub manifest: Manifest,
}

impl GuestDir {
    /// Reads `<dir>/manifest.json` and checks the files it lists are there.
    pub fn load(dir: &Path) -> Result<GuestDir, GuestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| GuestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest = Manifest::from_json(&text).map_err(|source| GuestError::Manifest {
            path: path.clone(),
            source,
        })?;
        let g = GuestDir {
            dir: dir.to_path_buf(),
            manifest,
        };
        for o in [Output::Kernel, Output::Initramfs, Output::RootImage] {
            let f = g.path(o)?;
            if !f.is_file() {
                return Err(GuestError::MissingFile { path: f });
            }
        }
        Ok(g)
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Where `output` is, as the manifest lists it.
    pub fn path(&self, output: Output) -> Result<PathBuf, GuestError> {
        self.manifest
            .output(output)
            .map(|o| self.dir.join(&o.file))
            .ok_or_else(|| GuestError::NotListed {
                path: self.dir.join(MANIFEST_FILE),
                output,
            })
    }

    fn unusable(&self, what: String) -> GuestError {
        GuestError::Unusable {
            path: self.dir.join(MANIFEST_FILE),
            what,
        }
    }

    /// The guest's network as the runner's private network needs it (room
    /// in the subnet for the guest and a bridge address), and the address
    /// imgrun puts on its bridge ([`bridge_address`]).
    pub fn network(&self) -> Result<(GuestNet, Ipv4Addr), GuestError> {
        let Some(net) = self.manifest.guest.network else {
            return Err(self.unusable(
                "the guest has no network ([network] in the recipe); imgrun reaches the guest over it".into(),
            ));
        };
        let prefix = net.address.prefix();
        if prefix > 30 {
            return Err(self.unusable(format!(
                "key guest.prefix: /{prefix} leaves no room for a bridge and a guest (1..=30)"
            )));
        }
        Ok((net, bridge_address(&net)))
    }

    /// The guest's status service, `address:port`.
    pub fn status_target(&self) -> Result<std::net::SocketAddr, GuestError> {
        let (net, _) = self.network()?;
        let port = self.manifest.guest.status_port.ok_or_else(|| {
            self.unusable(
                "the guest's status service is off ([init.status] enabled = false); the checks ask it".into(),
            )
        })?;
        Ok(std::net::SocketAddr::from((net.address.addr(), port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest fixture the CLI tests use too.
    const GOOD: &str = include_str!("../tests/data/manifest.json");

    fn dir_with(manifest: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(MANIFEST_FILE), manifest).unwrap();
        d
    }

    #[test]
    fn paths_come_from_the_manifest() {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["outputs"].as_array_mut().unwrap().remove(1);
        let d = dir_with(&v.to_string());
        for f in ["rootfs.img", "vmlinuz"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        // initrd.img is not listed.
        let e = GuestDir::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("lists no initrd output"), "{e}");
        let g = GuestDir {
            dir: d.path().into(),
            manifest: Manifest::from_json(GOOD).unwrap(),
        };
        assert_eq!(
            g.path(Output::RootImage).unwrap(),
            d.path().join("rootfs.img")
        );
        assert_eq!(
            g.status_target().unwrap(),
            "10.99.0.2:5115".parse().unwrap()
        );
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let d = dir_with(&GOOD.replace("\"prefix\": 24", "\"prefix\": 33"));
        let e = GuestDir::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json: key guest.prefix"), "{e}");
        let d = dir_with("{\n\"name\": }");
        let e = GuestDir::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json: line 2"), "{e}");
        let slash31 = GOOD
            .replace("\"prefix\": 24", "\"prefix\": 31")
            .replace("10.99.0.1", "10.99.0.3");
        let g = GuestDir {
            dir: "/o".into(),
            manifest: Manifest::from_json(&slash31).unwrap(),
        };
        let e = g.network().unwrap_err().to_string();
        assert!(e.contains("/o/manifest.json: key guest.prefix"), "{e}");
    }

    #[test]
    fn the_bridge_holds_the_gateway_or_the_highest_free_host_address() {
        let no_gateway = GOOD.replace("\"gateway\": \"10.99.0.1\",", "");
        assert_ne!(no_gateway, GOOD, "fixture changed");
        let net = |text: &str| {
            GuestDir {
                dir: "/o".into(),
                manifest: Manifest::from_json(text).unwrap(),
            }
            .network()
            .unwrap()
        };
        let (n, bridge) = net(GOOD);
        assert_eq!(
            (n.gateway, bridge),
            (Some([10, 99, 0, 1].into()), [10, 99, 0, 1].into())
        );
        let (n, bridge) = net(&no_gateway);
        assert_eq!((n.gateway, bridge), (None, [10, 99, 0, 254].into()));
        // The highest host address is the guest's: the one below it.
        let (_, bridge) = net(&no_gateway.replace("10.99.0.2", "10.99.0.254"));
        assert_eq!(bridge, Ipv4Addr::new(10, 99, 0, 253));
        let (_, bridge) = net(&no_gateway.replace("\"prefix\": 24", "\"prefix\": 30"));
        assert_eq!(bridge, Ipv4Addr::new(10, 99, 0, 1));
        let (_, bridge) = net(&no_gateway
            .replace("\"prefix\": 24", "\"prefix\": 30")
            .replace("10.99.0.2", "10.99.0.1"));
        assert_eq!(bridge, Ipv4Addr::new(10, 99, 0, 2));
        let (_, bridge) = net(&no_gateway.replace("\"prefix\": 24", "\"prefix\": 8"));
        assert_eq!(bridge, Ipv4Addr::new(10, 255, 255, 254));
    }
}

//! The guest's xl.cfg as the runner needs it: the domain name, the files
//! a Xen host must see and the domain's type. The format is the contract's
//! ([`guest_contract::xl_cfg`]); this reads the file.

use std::path::{Path, PathBuf};

use guest_contract::GuestType;
use guest_contract::xl_cfg::XlFiles;

/// Errors reading an xl.cfg.
#[derive(Debug, thiserror::Error)]
pub enum XlCfgError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        source: guest_contract::xl_cfg::XlCfgError,
    },
}

/// What the runner takes from an xl.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlCfg {
    pub path: PathBuf,
    pub name: String,
    pub kernel: PathBuf,
    pub ramdisk: Option<PathBuf>,
    /// Disk targets (files or block devices), in config order.
    pub disks: Vec<PathBuf>,
    /// `type =` (or the older `builder =`), as [`XlFiles::guest_type`] reads it.
    pub guest_type: GuestType,
}

impl XlCfg {
    pub fn load(path: &Path) -> Result<XlCfg, XlCfgError> {
        let text = std::fs::read_to_string(path).map_err(|source| XlCfgError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |source| XlCfgError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        let f = XlFiles::parse(&text).map_err(invalid)?;
        Ok(XlCfg {
            path: path.to_path_buf(),
            name: f.name,
            kernel: f.kernel.into(),
            ramdisk: f.ramdisk.map(PathBuf::from),
            disks: f.disks.into_iter().map(PathBuf::from).collect(),
            guest_type: f.guest_type,
        })
    }

    /// Every file the Xen host reads for this domain, the config itself first.
    pub fn files(&self) -> Vec<&Path> {
        let mut v = vec![self.path.as_path(), self.kernel.as_path()];
        v.extend(self.ramdisk.as_deref());
        v.extend(self.disks.iter().map(PathBuf::as_path));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.cfg");
        std::fs::write(&p, "name = 'g'\nkernel = /k\n").unwrap();
        let e = XlCfg::load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("g.cfg: line 2: key kernel: expected a quoted path"),
            "{e}"
        );
        std::fs::write(&p, "name = 'g'\nkernel = '/k'\ndisk = [ 'target=/d' ]\n").unwrap();
        let c = XlCfg::load(&p).unwrap();
        assert_eq!(c.files(), [p.as_path(), Path::new("/k"), Path::new("/d")]);
        assert_eq!(c.guest_type, GuestType::Pv);
        std::fs::write(&p, "name = 'g'\nkernel = '/k'\ntype = pvh\n").unwrap();
        let e = XlCfg::load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("g.cfg: line 3: key type: expected a quoted word"),
            "{e}"
        );
        std::fs::write(&p, "name = 'g'\nkernel = '/k'\ntype = 'pvh'\n").unwrap();
        assert_eq!(XlCfg::load(&p).unwrap().guest_type, GuestType::Pvh);
    }
}

//! Walking a host directory (sorted by name) into the plan, with ownership policy,
//! xattrs, hard-link detection and hole hints.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::options::{FileData, Metadata, OwnerPolicy, Timestamp, TreeOverrides};
use crate::tree::{NodeId, NodeKind, SourceStat, Tree};

/// State for one `add_tree` call.
pub(crate) struct Walker<'a> {
    pub tree: &'a mut Tree,
    pub owner: OwnerPolicy,
    /// Clamp times to this (reproducible builds), if set.
    pub clamp: Option<i64>,
    /// (dev, ino) of multiply-linked sources already added -> their node.
    pub links: HashMap<(u64, u64), NodeId>,
    /// Modes and owner set for the whole tree.
    pub overrides: TreeOverrides,
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::SourceRead {
        path: path.to_owned(),
        source,
    }
}

/// Reads all xattrs of a host path (without following symlinks). Unsupported = none.
fn host_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut list = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => list.resize(list.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::NOSYS) => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::SourceRead {
                    path: path.to_owned(),
                    source: e.into(),
                });
            }
        }
        if list.len() > 1 << 20 {
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for name in list[..n].split(|&c| c == 0).filter(|s| !s.is_empty()) {
        let Ok(name_s) = std::str::from_utf8(name) else {
            continue;
        };
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name, &mut val[..]) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) if val.len() < 65536 => val.resize(65536, 0),
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => {
                    return Err(Error::SourceRead {
                        path: path.to_owned(),
                        source: e.into(),
                    });
                }
            }
        };
        let Some(len) = len else { continue };
        val.truncate(len);
        if crate::xattr::split_name(name_s).is_none() {
            continue;
        }
        if name_s.starts_with("system.posix_acl_") {
            val = crate::xattr::acl_to_disk(&val);
        }
        out.push((name_s.to_owned(), val));
    }
    Ok(out)
}

impl Walker<'_> {
    fn meta(&self, m: &fs::Metadata, path: &Path) -> Result<Metadata, Error> {
        let mut t = Timestamp {
            sec: m.mtime(),
            nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        if let Some(c) = self.clamp {
            if t.sec >= c {
                t = Timestamp::from_secs(c);
            }
        }
        let mode = match (self.overrides, m.file_type()) {
            (
                TreeOverrides {
                    dir_mode: Some(d), ..
                },
                ft,
            ) if ft.is_dir() => d,
            (
                TreeOverrides {
                    file_mode: Some(f), ..
                },
                ft,
            ) if ft.is_file() => f,
            _ => (m.mode() & 0o7777) as u16,
        };
        let mut meta = Metadata::new(mode, t);
        if let Some((uid, gid)) = self.overrides.owner {
            (meta.uid, meta.gid) = (uid, gid);
        } else if self.owner == OwnerPolicy::Keep {
            meta.uid = m.uid();
            meta.gid = m.gid();
        }
        meta.xattrs = host_xattrs(path)?;
        Ok(meta)
    }

    /// Adds the contents of host `dir` under image directory node `dest`.
    pub fn walk(&mut self, dir: &Path, dest: NodeId) -> Result<(), Error> {
        let mut names: Vec<Box<[u8]>> = Vec::new();
        for e in fs::read_dir(dir).map_err(read_err(dir))? {
            let e = e.map_err(read_err(dir))?;
            names.push(e.file_name().as_bytes().into());
        }
        names.sort();
        for name in names {
            let host: PathBuf = dir.join(OsStr::from_bytes(&name));
            if name.len() > 255 {
                return Err(Error::NameTooLong {
                    path: host.display().to_string(),
                    len: name.len(),
                });
            }
            let m = fs::symlink_metadata(&host).map_err(read_err(&host))?;
            let ft = m.file_type();
            if !ft.is_dir() && m.nlink() > 1 {
                if let Some(&first) = self.links.get(&(m.dev(), m.ino())) {
                    self.tree.link(dest, &name, first);
                    continue;
                }
            }
            let meta = self.meta(&m, &host)?;
            let (maj, min) = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
            let kind = if ft.is_dir() {
                NodeKind::Dir {
                    children: Default::default(),
                }
            } else if ft.is_file() {
                let stat = SourceStat {
                    size: m.len(),
                    allocated: m.blocks() * 512,
                };
                NodeKind::File {
                    data: FileData::Path(host.clone()),
                    stat: Some(stat),
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(read_err(&host))?;
                NodeKind::Symlink(target.as_os_str().as_bytes().to_vec())
            } else if ft.is_char_device() {
                NodeKind::CharDev {
                    major: maj,
                    minor: min,
                }
            } else if ft.is_block_device() {
                NodeKind::BlockDev {
                    major: maj,
                    minor: min,
                }
            } else if ft.is_fifo() {
                NodeKind::Fifo
            } else if ft.is_socket() {
                NodeKind::Socket
            } else {
                return Err(Error::UnsupportedSource { path: host });
            };
            let id: NodeId = self.tree.upsert(dest, &name, kind, meta);
            if !ft.is_dir() && m.nlink() > 1 {
                self.links.insert((m.dev(), m.ino()), id);
            }
            if ft.is_dir() {
                self.walk(&host, id)?;
            }
        }
        Ok(())
    }

    /// Metadata of the host directory itself, applied to the destination.
    pub fn dir_meta(&self, dir: &Path) -> Result<Metadata, Error> {
        let m = fs::symlink_metadata(dir).map_err(read_err(dir))?;
        if !m.is_dir() {
            return Err(Error::SourceRead {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        self.meta(&m, dir)
    }
}

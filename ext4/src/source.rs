//! Walking a host directory (sorted by name) into the plan, with ownership policy,
//! xattrs, hard-link detection and hole hints. The walk holds one directory file
//! descriptor per level and names entries relative to it (`openat`, `statat`,
//! `readlinkat`), as `mke2fs -d` does with `chdir`, so no path is ever longer
//! than a name and trees deeper than `PATH_MAX` are read.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, OFlags, Stat};

use crate::error::Error;
use crate::options::{FileData, Metadata, OwnerPolicy, TimePolicy, Timestamp, TreeOverrides};
use crate::tree::{NodeId, NodeKind, SourceStat, Tree};

/// State for one `add_tree` call.
pub(crate) struct Walker<'a> {
    pub tree: &'a mut Tree,
    pub owner: OwnerPolicy,
    /// Which times the entries get.
    pub times: TimePolicy,
    /// (dev, ino) of multiply-linked sources already added -> their node.
    pub links: HashMap<(u64, u64), NodeId>,
    /// Modes and owner set for the whole tree.
    pub overrides: TreeOverrides,
}

fn read_err(path: &Path) -> impl FnOnce(rustix::io::Errno) -> Error + '_ {
    move |e| Error::SourceRead {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Paths at least this long are not handed to the kernel whole.
const LONG_PATH: usize = 4000;

/// Where a host entry's xattrs are read from.
enum XattrOf<'a> {
    /// An open file or directory.
    Fd(BorrowedFd<'a>),
    /// A path (not followed if it is a symlink).
    Path(&'a Path),
}

impl XattrOf<'_> {
    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrOf::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrOf::Path(p) => rustix::fs::llistxattr(*p, buf),
        }
    }

    fn get(&self, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrOf::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrOf::Path(p) => rustix::fs::lgetxattr(*p, name, buf),
        }
    }
}

/// Reads all xattrs of a host entry. Unsupported = none. `path` names it in errors.
fn host_xattrs(of: XattrOf<'_>, path: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut list = vec![0u8; 1024];
    let n = loop {
        match of.list(&mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => list.resize(list.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::NOSYS) => return Ok(Vec::new()),
            Err(e) => return Err(read_err(path)(e)),
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
            match of.get(name, &mut val[..]) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) if val.len() < 65536 => val.resize(65536, 0),
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(read_err(path)(e)),
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

/// A stat's time as a [`Timestamp`].
fn time(sec: i64, nsec: u64) -> Timestamp {
    Timestamp {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0).min(999_999_999),
    }
}

/// The facts of a stat the walk uses, in fixed types.
struct Facts {
    ft: FileType,
    mode: u16,
    uid: u32,
    gid: u32,
    dev: u64,
    ino: u64,
    nlink: u64,
    rdev: u64,
    size: u64,
    blocks: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
}

#[expect(
    clippy::useless_conversion,
    reason = "the stat field types differ between architectures"
)]
fn facts(st: &Stat) -> Facts {
    Facts {
        ft: FileType::from_raw_mode(st.st_mode),
        mode: (st.st_mode & 0o7777) as u16,
        uid: st.st_uid,
        gid: st.st_gid,
        dev: u64::from(st.st_dev),
        ino: u64::from(st.st_ino),
        nlink: u64::from(st.st_nlink),
        rdev: u64::from(st.st_rdev),
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: time(i64::from(st.st_atime), u64::from(st.st_atime_nsec)),
        mtime: time(i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
        ctime: time(i64::from(st.st_ctime), u64::from(st.st_ctime_nsec)),
    }
}

/// Opens a directory by a path of any length: whole when it is short, else
/// one chunk of components at a time.
fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    crate::data::open_long(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
        .map_err(read_err(path))
}

impl Walker<'_> {
    fn meta(&self, f: &Facts, xattrs: XattrOf<'_>, path: &Path) -> Result<Metadata, Error> {
        let mode = match self.overrides {
            TreeOverrides {
                dir_mode: Some(d), ..
            } if f.ft == FileType::Directory => d,
            TreeOverrides {
                file_mode: Some(m), ..
            } if f.ft == FileType::RegularFile => m,
            _ => f.mode,
        };
        let mut meta = Metadata::new(mode, f.mtime);
        meta.atime = f.atime;
        meta.ctime = f.ctime;
        self.times.apply_meta(&mut meta);
        if let Some((uid, gid)) = self.overrides.owner {
            (meta.uid, meta.gid) = (uid, gid);
        } else if self.owner == OwnerPolicy::Keep {
            meta.uid = f.uid;
            meta.gid = f.gid;
        }
        meta.xattrs = host_xattrs(xattrs, path)?;
        Ok(meta)
    }

    /// Adds the contents of host directory `dir` (open, at `dir_path`) under image
    /// directory node `dest`.
    pub fn walk(&mut self, dir: &OwnedFd, dir_path: &Path, dest: NodeId) -> Result<(), Error> {
        let mut names: Vec<Box<[u8]>> = Vec::new();
        for e in Dir::read_from(dir).map_err(read_err(dir_path))? {
            let e = e.map_err(read_err(dir_path))?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.into());
            }
        }
        names.sort();
        for name in names {
            let host: PathBuf = dir_path.join(OsStr::from_bytes(&name));
            if name.len() > 255 {
                return Err(Error::NameTooLong {
                    path: host.display().to_string(),
                    len: name.len(),
                });
            }
            let st = rustix::fs::statat(dir, &*name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(read_err(&host))?;
            let f = facts(&st);
            let is_dir = f.ft == FileType::Directory;
            if !is_dir && f.nlink > 1 {
                if let Some(&first) = self.links.get(&(f.dev, f.ino)) {
                    self.tree.link(dest, &name, first);
                    continue;
                }
            }
            // xattrs by the whole path while it is short; else through the
            // directory's descriptor (the last component is not followed).
            let proc_path;
            let xattr_path = if host.as_os_str().len() < LONG_PATH {
                host.as_path()
            } else {
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(&name);
                proc_path = PathBuf::from(OsStr::from_bytes(&p));
                proc_path.as_path()
            };
            let meta = self.meta(&f, XattrOf::Path(xattr_path), &host)?;
            let (maj, min) = (rustix::fs::major(f.rdev), rustix::fs::minor(f.rdev));
            let kind = match f.ft {
                FileType::Directory => NodeKind::Dir {
                    children: Default::default(),
                },
                FileType::RegularFile => NodeKind::File {
                    data: FileData::Path(host.clone()),
                    stat: Some(SourceStat {
                        size: f.size,
                        allocated: f.blocks * 512,
                    }),
                },
                FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(dir, &*name, Vec::new()).map_err(read_err(&host))?;
                    NodeKind::Symlink(target.into_bytes())
                }
                FileType::CharacterDevice => NodeKind::CharDev {
                    major: maj,
                    minor: min,
                },
                FileType::BlockDevice => NodeKind::BlockDev {
                    major: maj,
                    minor: min,
                },
                FileType::Fifo => NodeKind::Fifo,
                FileType::Socket => NodeKind::Socket,
                FileType::Unknown => return Err(Error::UnsupportedSource { path: host }),
            };
            let id: NodeId = self.tree.upsert(dest, &name, kind, meta);
            if !is_dir && f.nlink > 1 {
                self.links.insert((f.dev, f.ino), id);
            }
            if is_dir {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = crate::data::open_noatime(dir, &name, flags).map_err(read_err(&host))?;
                self.walk(&sub, &host, id)?;
            }
        }
        Ok(())
    }

    /// Opens the host directory itself; its metadata, applied to the destination.
    pub fn open_top(&self, dir: &Path) -> Result<(OwnedFd, Metadata), Error> {
        let fd = match open_dir(dir) {
            Err(Error::SourceRead { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
            {
                return Err(Error::SourceRead {
                    path: dir.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    ),
                });
            }
            r => r?,
        };
        let st = rustix::fs::fstat(&fd).map_err(read_err(dir))?;
        let meta = self.meta(&facts(&st), XattrOf::Fd(fd.as_fd()), dir)?;
        Ok((fd, meta))
    }
}

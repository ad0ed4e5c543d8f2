//! A whole initramfs: records collected by path, then written in one
//! reproducible pass — sorted by path, every missing parent directory made
//! explicit (the kernel does not create them), duplicates resolved (the last
//! record added for a path wins), inode numbers assigned 1, 2, 3… in that
//! order, every mtime set to one fixed value.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::record::Record;
use super::writer::{CpioError, NewcWriter};

/// An initramfs being assembled.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    records: BTreeMap<String, Record>,
    mtime: u64,
}

/// How [`Archive::write_file`] encodes the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain cpio newc.
    Cpio,
    /// cpio newc inside gzip at this level (0-9; fixed header: mtime 0,
    /// no file name).
    Gzip(u32),
}

/// Normalises an archive path: no leading `/`, no `.` or empty components;
/// `..` is rejected.
pub fn normalize_name(name: &str) -> Result<String, CpioError> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(CpioError::BadName(name.to_owned())),
            c if c.contains('\0') => return Err(CpioError::BadName(name.to_owned())),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(CpioError::BadName(name.to_owned()));
    }
    Ok(parts.join("/"))
}

impl Archive {
    /// An empty archive whose records will all carry `mtime` (use
    /// `SOURCE_DATE_EPOCH` for reproducible builds).
    pub fn new(mtime: u64) -> Archive {
        Archive {
            records: BTreeMap::new(),
            mtime,
        }
    }

    /// Adds `rec` (its name normalised); replaces an earlier record at the
    /// same path.
    pub fn add(&mut self, mut rec: Record) -> Result<(), CpioError> {
        rec.name = normalize_name(&rec.name)?;
        self.records.insert(rec.name.clone(), rec);
        Ok(())
    }

    /// Adds the contents of host directory `host_dir` under archive path
    /// `dest` (recursively; permission bits from the host, owners root;
    /// files are read when the archive is written).
    pub fn add_host_tree(&mut self, host_dir: &Path, dest: &str) -> Result<(), CpioError> {
        let read_err = |path: &Path, source| CpioError::ReadHost {
            name: dest.to_owned(),
            path: path.to_owned(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(host_dir)
            .map_err(|e| read_err(host_dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(host_dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = format!(
                "{}/{}",
                dest.trim_end_matches('/'),
                e.file_name().to_string_lossy()
            );
            let meta = std::fs::symlink_metadata(&path).map_err(|err| read_err(&path, err))?;
            let perm = meta.permissions().mode() & 0o7777;
            let ty = meta.file_type();
            let rec = if ty.is_dir() {
                self.add(Record::dir(&name, perm))?;
                self.add_host_tree(&path, &name)?;
                continue;
            } else if ty.is_file() {
                Record::host_file(&name, perm, &path).map_err(|err| read_err(&path, err))?
            } else if ty.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|err| read_err(&path, err))?;
                Record::symlink(&name, &target.to_string_lossy())
            } else if ty.is_char_device() || ty.is_block_device() {
                let rdev = meta.rdev();
                let (major, minor) = (dev_major(rdev), dev_minor(rdev));
                if ty.is_char_device() {
                    Record::char_dev(&name, perm, major, minor)
                } else {
                    Record::block_dev(&name, perm, major, minor)
                }
            } else if ty.is_fifo() {
                Record::fifo(&name, perm)
            } else {
                continue; // sockets are not archived
            };
            self.add(rec)?;
        }
        Ok(())
    }

    /// Number of records added (parents not yet made explicit).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records as they will be written: sorted by path, missing parents
    /// added as `0755` root directories, fixed mtime, directory link counts
    /// (2 + subdirectories).
    pub fn records(&self) -> Result<Vec<Record>, CpioError> {
        let mut all = self.records.clone();
        for name in self.records.keys() {
            let mut parent = name.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                parent = p;
                match all.get(parent) {
                    Some(r) if r.is_dir() => {}
                    Some(_) => {
                        return Err(CpioError::ParentNotDir {
                            name: name.clone(),
                            parent: parent.to_owned(),
                        });
                    }
                    None => {
                        all.insert(parent.to_owned(), Record::dir(parent, 0o755));
                    }
                }
            }
        }
        let dirs: BTreeSet<String> = all
            .values()
            .filter(|r| r.is_dir())
            .map(|r| r.name.clone())
            .collect();
        let mut subdirs: BTreeMap<&str, u32> = BTreeMap::new();
        for d in &dirs {
            if let Some((p, _)) = d.rsplit_once('/') {
                *subdirs.entry(p).or_default() += 1;
            }
        }
        Ok(all
            .into_values()
            .map(|mut r| {
                r.mtime = self.mtime;
                if r.is_dir() {
                    r.nlink = 2 + subdirs.get(r.name.as_str()).copied().unwrap_or(0);
                }
                r
            })
            .collect())
    }

    /// Writes the cpio newc archive to `out` and returns it.
    pub fn write<W: Write>(&self, out: W) -> Result<W, CpioError> {
        let mut w = NewcWriter::new(out);
        for (i, rec) in self.records()?.iter().enumerate() {
            let ino = u32::try_from(i + 1).map_err(|_| CpioError::TooLarge {
                name: rec.name.clone(),
                field: "inode number",
                value: i as u64 + 1,
            })?;
            w.write_record(ino, rec)?;
        }
        w.finish()
    }

    /// Writes the archive gzip-compressed at `level` (0-9; deterministic
    /// header: mtime 0, no file name) to `out` and returns it.
    pub fn write_gzip<W: Write>(&self, out: W, level: u32) -> Result<W, CpioError> {
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(3) // Unix, as gzip(1) writes
            .write(out, flate2::Compression::new(level.min(9)));
        self.write(gz)?.finish().map_err(CpioError::Write)
    }

    /// Writes the archive to `path` through a temporary file in the same
    /// directory, renamed into place only on success. Returns its size.
    pub fn write_file(&self, path: &Path, encoding: Encoding) -> Result<u64, CpioError> {
        let out_err = |source| CpioError::Output {
            path: path.to_owned(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(out_err)?;
        let buffered = std::io::BufWriter::new(tmp);
        let buffered = match encoding {
            Encoding::Cpio => self.write(buffered)?,
            Encoding::Gzip(level) => self.write_gzip(buffered, level)?,
        };
        let tmp = buffered.into_inner().map_err(|e| out_err(e.into_error()))?;
        let size = tmp.as_file().metadata().map_err(out_err)?.len();
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(out_err)?;
        tmp.persist(path).map_err(|e| out_err(e.error))?;
        Ok(size)
    }
}

/// Major number of a Linux `dev_t` (glibc's `gnu_dev_major` encoding).
fn dev_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// Minor number of a Linux `dev_t`.
fn dev_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initramfs::record::{Contents, mode};

    #[test]
    fn host_trees_are_added_sorted_with_host_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("kernel/net")).unwrap();
        std::fs::write(root.join("kernel/net/b.ko"), b"bb").unwrap();
        std::fs::write(root.join("a.ko"), b"a").unwrap();
        std::fs::set_permissions(root.join("a.ko"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink("a.ko", root.join("link")).unwrap();
        let mut a = Archive::new(7);
        a.add_host_tree(root, "/lib/modules/k").unwrap();
        let recs = a.records().unwrap();
        let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib/modules",
                "lib/modules/k",
                "lib/modules/k/a.ko",
                "lib/modules/k/kernel",
                "lib/modules/k/kernel/net",
                "lib/modules/k/kernel/net/b.ko",
                "lib/modules/k/link",
            ]
        );
        let a_ko = &recs[3];
        assert_eq!(a_ko.mode, mode::S_IFREG | 0o600);
        assert_eq!((a_ko.uid, a_ko.gid, a_ko.mtime), (0, 0, 7));
        assert!(matches!(a_ko.contents, Contents::File { size: 1, .. }));
        assert_eq!(recs[7].mode & mode::S_IFMT, mode::S_IFLNK);
        assert_eq!(recs[7].contents, Contents::Bytes(b"a.ko".to_vec()));
        // Implicit parents: 0755 dirs; link count 2 + subdirectories.
        assert_eq!(recs[0].mode, mode::S_IFDIR | 0o755);
        assert_eq!(recs[2].nlink, 3);
        assert_eq!(recs[5].nlink, 2);
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name("/./lib//modules/").unwrap(), "lib/modules");
        assert!(normalize_name("a/../../b").is_err());
        assert!(normalize_name("").is_err());
        assert!(normalize_name("a\0b").is_err());
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(254, 0x12345) in glibc's encoding.
        let dev: u64 =
            ((0x12345u64 & 0xff) | ((254u64 & 0xfff) << 8)) | ((0x12345u64 & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (254, 0x12345));
    }
}

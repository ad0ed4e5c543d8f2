//! One archive member: what the kernel's initramfs unpacker
//! (init/initramfs.c) creates — a directory, file, symlink or special file.

use std::path::{Path, PathBuf};

/// File type bits of `c_mode` (as in `<sys/stat.h>`).
pub mod mode {
    /// Mask of the type bits.
    pub const S_IFMT: u32 = 0o170_000;
    /// Socket.
    pub const S_IFSOCK: u32 = 0o140_000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120_000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100_000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060_000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040_000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020_000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010_000;
}

/// Where a record's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// No data (directories, devices, FIFOs).
    Empty,
    /// Data held in memory (file contents, or a symlink's target).
    Bytes(Vec<u8>),
    /// A host file read when the archive is written; `size` is what the header
    /// declares, and the file must still have exactly that many bytes.
    File {
        /// The host file.
        path: PathBuf,
        /// Its size when the record was made.
        size: u64,
    },
}

impl Contents {
    /// The size the header declares (`c_filesize`).
    pub fn len(&self) -> u64 {
        match self {
            Contents::Empty => 0,
            Contents::Bytes(b) => b.len() as u64,
            Contents::File { size, .. } => *size,
        }
    }

    /// True if the record carries no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One cpio newc record. Names are paths inside the archive, without a
/// leading `/` (`lib/modules/6.1.0-56-amd64/kernel/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Path inside the archive.
    pub name: String,
    /// `c_mode`: type bits and permission bits.
    pub mode: u32,
    /// `c_uid`.
    pub uid: u32,
    /// `c_gid`.
    pub gid: u32,
    /// `c_mtime` (seconds since the epoch).
    pub mtime: u64,
    /// `c_rdevmajor` of a device node.
    pub rdev_major: u32,
    /// `c_rdevminor` of a device node.
    pub rdev_minor: u32,
    /// `c_nlink`.
    pub nlink: u32,
    /// The data (`c_filesize` bytes).
    pub contents: Contents,
}

impl Record {
    fn new(name: &str, mode: u32, contents: Contents) -> Record {
        Record {
            name: name.to_owned(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            rdev_major: 0,
            rdev_minor: 0,
            nlink: 1,
            contents,
        }
    }

    /// A directory with permission bits `perm` (e.g. `0o755`), owned by root.
    pub fn dir(name: &str, perm: u32) -> Record {
        let mut r = Record::new(name, mode::S_IFDIR | (perm & 0o7777), Contents::Empty);
        r.nlink = 2;
        r
    }

    /// A regular file with `data`.
    pub fn file(name: &str, perm: u32, data: impl Into<Vec<u8>>) -> Record {
        Record::new(
            name,
            mode::S_IFREG | (perm & 0o7777),
            Contents::Bytes(data.into()),
        )
    }

    /// A regular file whose data is read from `path` when the archive is
    /// written (its size is taken now).
    pub fn host_file(name: &str, perm: u32, path: &Path) -> std::io::Result<Record> {
        let size = std::fs::metadata(path)?.len();
        Ok(Record::new(
            name,
            mode::S_IFREG | (perm & 0o7777),
            Contents::File {
                path: path.to_owned(),
                size,
            },
        ))
    }

    /// A symbolic link to `target`.
    pub fn symlink(name: &str, target: &str) -> Record {
        Record::new(
            name,
            mode::S_IFLNK | 0o777,
            Contents::Bytes(target.as_bytes().to_vec()),
        )
    }

    /// A character device node (e.g. `dev/console`, 5:1).
    pub fn char_dev(name: &str, perm: u32, major: u32, minor: u32) -> Record {
        let mut r = Record::new(name, mode::S_IFCHR | (perm & 0o7777), Contents::Empty);
        r.rdev_major = major;
        r.rdev_minor = minor;
        r
    }

    /// A block device node.
    pub fn block_dev(name: &str, perm: u32, major: u32, minor: u32) -> Record {
        let mut r = Record::new(name, mode::S_IFBLK | (perm & 0o7777), Contents::Empty);
        r.rdev_major = major;
        r.rdev_minor = minor;
        r
    }

    /// A FIFO.
    pub fn fifo(name: &str, perm: u32) -> Record {
        Record::new(name, mode::S_IFIFO | (perm & 0o7777), Contents::Empty)
    }

    /// True if this record is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & mode::S_IFMT == mode::S_IFDIR
    }
}

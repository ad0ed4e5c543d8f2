//! Public build options and the description of entries added to an image.

use std::path::PathBuf;

/// Filesystem block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockSize {
    /// 1 KiB blocks (small groups of 8 MiB).
    B1024,
    /// 2 KiB blocks.
    B2048,
    /// 4 KiB blocks, the mke2fs default.
    #[default]
    B4096,
}

impl BlockSize {
    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            BlockSize::B1024 => 1024,
            BlockSize::B2048 => 2048,
            BlockSize::B4096 => 4096,
        }
    }

    /// `s_log_block_size`: log2(size) - 10.
    pub fn log(self) -> u32 {
        match self {
            BlockSize::B1024 => 0,
            BlockSize::B2048 => 1,
            BlockSize::B4096 => 2,
        }
    }

    /// Parses 1024, 2048 or 4096.
    pub fn from_bytes(n: u32) -> Option<BlockSize> {
        match n {
            1024 => Some(BlockSize::B1024),
            2048 => Some(BlockSize::B2048),
            4096 => Some(BlockSize::B4096),
            _ => None,
        }
    }
}

/// How big the filesystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SizeSpec {
    /// Exactly this many bytes (rounded down to whole blocks).
    Fixed(u64),
    /// Contents plus headroom plus journal.
    #[default]
    Auto,
}

/// A size string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: expected \"auto\", a byte count or a number with K/M/G/T suffix")]
pub struct ParseSizeError {
    /// The text that was rejected.
    pub input: String,
}

impl SizeSpec {
    /// Parses `"auto"`, `"1G"`, `"512M"`, `"64k"`, `"1048576"` (binary units).
    pub fn parse(s: &str) -> Result<SizeSpec, ParseSizeError> {
        let err = || ParseSizeError {
            input: s.to_owned(),
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(SizeSpec::Auto);
        }
        let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
        let t = t.strip_suffix(['i']).unwrap_or(t);
        let (num, shift) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 10),
            Some('m' | 'M') => (&t[..t.len() - 1], 20),
            Some('g' | 'G') => (&t[..t.len() - 1], 30),
            Some('t' | 'T') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        let n: u64 = num.trim().parse().map_err(|_| err())?;
        let bytes = n.checked_mul(1u64 << shift).ok_or_else(err)?;
        if bytes == 0 {
            return Err(err());
        }
        Ok(SizeSpec::Fixed(bytes))
    }
}

/// Who owns the files added by [`crate::FsBuilder::add_tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnerPolicy {
    /// Everything is root:root.
    #[default]
    Root,
    /// Keep the source's uid and gid.
    Keep,
}

/// What [`crate::FsBuilder::add_tree_with`] sets instead of what the host
/// tree says; `None` keeps the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeOverrides {
    /// Permission bits of every regular file.
    pub file_mode: Option<u16>,
    /// Permission bits of every directory, the top one included.
    pub dir_mode: Option<u16>,
    /// Owner (uid, gid) of every entry, whatever the [`OwnerPolicy`].
    pub owner: Option<(u32, u32)>,
}

/// Options for a filesystem build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Block size.
    pub block_size: BlockSize,
    /// Filesystem size.
    pub size: SizeSpec,
    /// Volume label (at most 16 bytes).
    pub label: Option<String>,
    /// Filesystem UUID; derived from `seed` when absent.
    pub uuid: Option<[u8; 16]>,
    /// Seed for the UUID and directory hash seed.
    pub seed: Option<u64>,
    /// Build time (seconds since the epoch), also the latest time `add_tree` gives an
    /// entry (later source mtimes are clamped to it); `None` means 0 and no clamping.
    /// The environment is not consulted: a program honouring `SOURCE_DATE_EPOCH`
    /// reads it and passes it here.
    pub timestamp: Option<i64>,
    /// Create an internal jbd2 journal (inode 8).
    pub journal: bool,
    /// Ownership of entries added by `add_tree`.
    pub owner: OwnerPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_size: BlockSize::B4096,
            size: SizeSpec::Auto,
            label: None,
            uuid: None,
            seed: None,
            timestamp: None,
            journal: true,
            owner: OwnerPolicy::Root,
        }
    }
}

/// A point in time with nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds (0..1e9).
    pub nsec: u32,
}

impl Timestamp {
    /// A timestamp with whole seconds.
    pub fn from_secs(sec: i64) -> Self {
        Timestamp { sec, nsec: 0 }
    }
}

/// Permissions, ownership, times and extended attributes of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid/setgid/sticky, no file type bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Inode change time.
    pub ctime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// Extended attributes by full name, e.g. `security.capability`.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    /// root:root, all four times `ts`, no xattrs.
    pub fn new(mode: u16, ts: Timestamp) -> Self {
        Metadata {
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            atime: ts,
            mtime: ts,
            ctime: ts,
            crtime: ts,
            xattrs: Vec::new(),
        }
    }
}

/// Where a regular file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    /// A host file, streamed at write time (holes are kept).
    Path(PathBuf),
    /// Contents in memory.
    Bytes(Vec<u8>),
}

/// What kind of entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File(FileData),
    /// A directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(PathBuf),
    /// A hard link to an existing non-directory entry (absolute image path).
    HardLink(String),
    /// A character device.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(SizeSpec::parse("auto"), Ok(SizeSpec::Auto));
        assert_eq!(SizeSpec::parse("1G"), Ok(SizeSpec::Fixed(1 << 30)));
        assert_eq!(SizeSpec::parse("512M"), Ok(SizeSpec::Fixed(512 << 20)));
        assert_eq!(SizeSpec::parse("64KiB"), Ok(SizeSpec::Fixed(64 << 10)));
        assert_eq!(SizeSpec::parse("4096"), Ok(SizeSpec::Fixed(4096)));
        assert!(SizeSpec::parse("12X").is_err());
        assert!(SizeSpec::parse("0").is_err());
        assert!(SizeSpec::parse("99999999999T").is_err());
    }
}

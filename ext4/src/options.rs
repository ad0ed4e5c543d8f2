//! Public build options and the description of entries added to an image.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Which times the inodes and the superblock get (see [`TimePolicy`]).
    /// The environment is not consulted: a program honouring `SOURCE_DATE_EPOCH`
    /// reads it and passes [`TimePolicy::Clamp`] here.
    pub times: TimePolicy,
    /// Create an internal jbd2 journal (inode 8).
    pub journal: bool,
    /// Ownership of entries added by `add_tree`.
    pub owner: OwnerPolicy,
    /// How many inodes the filesystem has (mke2fs `-i` / `-N`).
    pub inodes: InodeSpec,
    /// Reserve GDT blocks for growing and make the resize inode (inode 7),
    /// as mke2fs does by default (`-O resize_inode`): room for the group
    /// descriptors of a filesystem 1024 times as big (at most 2^32 blocks,
    /// and one block of their addresses), so that the kernel can grow it
    /// while mounted (`resize2fs` on a bigger device). `false` is `-O
    /// ^resize_inode`. Like mke2fs, there is none (whatever this says) beyond
    /// 2^32 blocks or with meta_bg, which a filesystem gets when its group
    /// descriptors and reserved blocks would take more than 3/4 of a group
    /// (1 KiB blocks from about 740 GiB, 2 KiB from 12 TiB, 4 KiB from 192 TiB).
    pub resize_inode: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_size: BlockSize::B4096,
            size: SizeSpec::Auto,
            label: None,
            uuid: None,
            seed: None,
            times: TimePolicy::Keep,
            journal: true,
            owner: OwnerPolicy::Root,
            inodes: InodeSpec::Default,
            resize_inode: true,
        }
    }
}

/// How many inodes a filesystem has. The contents always get the inodes
/// they need, more than asked for if need be; the rest are free for files
/// created later. Counts are rounded as mke2fs rounds them: to fill whole
/// inode-table blocks, a multiple of 8 in every group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InodeSpec {
    /// One inode per `inode_ratio` bytes, as mke2fs with the `mke2fs.conf`
    /// e2fsprogs ships: 8192 under 3 MiB ("floppy"), 4096 under 512 MiB
    /// ("small"), 16384 under 4 TiB, 32768 under 16 TiB ("big"), else 65536
    /// ("huge"); at most 2^32 - 1 in all.
    #[default]
    Default,
    /// One inode per this many bytes of filesystem (`mke2fs -i`): 1024 to
    /// 67108864 (64 MiB).
    BytesPerInode(u64),
    /// This many inodes (`mke2fs -N`): 1 to 2^32 - 1, at least 12 are made
    /// (the reserved ones and one more).
    Count(u64),
}

impl InodeSpec {
    /// Smallest [`InodeSpec::BytesPerInode`] (`EXT2_MIN_BLOCK_SIZE`, as mke2fs).
    pub const MIN_BYTES_PER_INODE: u64 = 1024;
    /// Largest [`InodeSpec::BytesPerInode`] (`EXT2_MAX_BLOCK_SIZE` * 1024, as mke2fs).
    pub const MAX_BYTES_PER_INODE: u64 = 64 << 20;

    /// Why this setting is out of range, if it is (whatever the size).
    pub(crate) fn invalid(self) -> Option<&'static str> {
        match self {
            InodeSpec::Default => None,
            InodeSpec::BytesPerInode(r)
                if !(Self::MIN_BYTES_PER_INODE..=Self::MAX_BYTES_PER_INODE).contains(&r) =>
            {
                Some("bytes per inode must be 1024 to 67108864 (as mke2fs -i)")
            }
            InodeSpec::Count(0) => Some("the inode count must be at least 1"),
            InodeSpec::Count(n) if n > u64::from(u32::MAX) => {
                Some("the inode count must be below 2^32 (ext4's 32-bit inode numbers)")
            }
            InodeSpec::BytesPerInode(_) | InodeSpec::Count(_) => None,
        }
    }
}

impl std::fmt::Display for InodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InodeSpec::Default => write!(f, "inodes by mke2fs's size classes"),
            InodeSpec::BytesPerInode(r) => write!(f, "bytes per inode {r}"),
            InodeSpec::Count(n) => write!(f, "inode count {n}"),
        }
    }
}

/// Which times the image gets, as `mke2fs -d` and the reproducible-builds
/// convention (`SOURCE_DATE_EPOCH`) have it.
///
/// Every entry has four times: atime, mtime, ctime and crtime. An entry from
/// a source ([`crate::FsBuilder::add_tree`], [`crate::FsBuilder::add_tar`]) has
/// the source's atime, mtime and ctime (with nanoseconds) and crtime = mtime
/// (mke2fs gives crtime its own clock's "now"; the source's birth time is not
/// carried); an entry given to [`crate::FsBuilder::add`] has the times of its
/// [`Metadata`]. The *build time* is what the image has where there is no
/// source: the root (unless a source directory is added at `/`),
/// `lost+found`, parent directories created on the way, the journal inode,
/// and the superblock's write and check times (`s_wtime`, `s_lastcheck`).
/// The policy then applies to every time of every inode alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePolicy {
    /// Keep every time as given; the build time is the wall clock when the
    /// [`crate::FsBuilder`] was made (so the UUID and times differ between
    /// builds unless a seed is given and sources keep their times): `mke2fs -d`.
    #[default]
    Keep,
    /// Keep times up to this one (seconds since the epoch); any later time
    /// becomes exactly it (nanoseconds 0). The build time is it:
    /// `SOURCE_DATE_EPOCH` as reproducible builds define it.
    Clamp(i64),
    /// Every time of every inode, and the build time, is this one.
    Force(i64),
}

impl TimePolicy {
    /// The build time under this policy, with `now` the wall clock.
    pub fn build_time(self, now: Timestamp) -> Timestamp {
        match self {
            TimePolicy::Keep => now,
            TimePolicy::Clamp(t) | TimePolicy::Force(t) => Timestamp::from_secs(t),
        }
    }

    /// The time `t` becomes in the image.
    pub fn apply(self, t: Timestamp) -> Timestamp {
        match self {
            TimePolicy::Keep => t,
            TimePolicy::Clamp(c) if t > Timestamp::from_secs(c) => Timestamp::from_secs(c),
            TimePolicy::Clamp(_) => t,
            TimePolicy::Force(f) => Timestamp::from_secs(f),
        }
    }

    /// All four times of `meta`, through [`TimePolicy::apply`].
    pub fn apply_meta(self, meta: &mut Metadata) {
        for t in [
            &mut meta.atime,
            &mut meta.mtime,
            &mut meta.ctime,
            &mut meta.crtime,
        ] {
            *t = self.apply(*t);
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

    /// The wall clock now.
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp {
                sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                // Before 1970: negative seconds, nanoseconds counted forwards.
                let d = e.duration();
                let mut sec = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nsec = d.subsec_nanos();
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Timestamp { sec, nsec }
            }
        }
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
    /// A host file, streamed at write time (holes are kept). Paths longer
    /// than `PATH_MAX` are opened a directory at a time.
    Path(PathBuf),
    /// Contents in memory.
    Bytes(Vec<u8>),
    /// A stretch of an open file (how [`crate::FsBuilder::add_tar`] keeps
    /// the members it spooled), streamed at write time.
    Region(FileRegion),
}

/// `size` bytes of an open file starting at `offset`, of which only the
/// given byte ranges hold data: the rest are holes in the image.
#[derive(Clone)]
pub struct FileRegion {
    file: Arc<File>,
    offset: u64,
    size: u64,
    data: Vec<(u64, u64)>,
}

impl FileRegion {
    /// Bytes `offset..offset + size` of `file`, all of them data.
    pub fn new(file: Arc<File>, offset: u64, size: u64) -> FileRegion {
        let data = if size == 0 { vec![] } else { vec![(0, size)] };
        FileRegion {
            file,
            offset,
            size,
            data,
        }
    }

    /// Only these ranges `[start, end)` (relative to the region, sorted, not
    /// overlapping, within `size`) hold data; the rest reads as zeros and
    /// stays a hole in the image.
    pub fn with_data(mut self, ranges: Vec<(u64, u64)>) -> FileRegion {
        self.data = ranges;
        self
    }

    /// The file.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Where the region starts in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The region's (the image file's) size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The byte ranges holding data, relative to the region's start.
    pub fn data(&self) -> &[(u64, u64)] {
        &self.data
    }
}

impl std::fmt::Debug for FileRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRegion")
            .field("offset", &self.offset)
            .field("size", &self.size)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl PartialEq for FileRegion {
    fn eq(&self, o: &FileRegion) -> bool {
        Arc::ptr_eq(&self.file, &o.file)
            && (self.offset, self.size, &self.data) == (o.offset, o.size, &o.data)
    }
}

impl Eq for FileRegion {}

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

/// What [`crate::FsBuilder::entry`] finds at a path: the entry as it will be
/// written, a symbolic link not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its type (a link with its target).
    pub kind: EntryType,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u16,
}

/// The type of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link with this target (bytes, as stored).
    Symlink(Vec<u8>),
    /// A character or block device, a fifo or a socket.
    Special,
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

    #[test]
    fn time_policies() {
        let t = Timestamp { sec: 2000, nsec: 5 };
        let early = Timestamp { sec: 10, nsec: 9 };
        let now = Timestamp { sec: 3000, nsec: 1 };
        assert_eq!(TimePolicy::Keep.apply(t), t);
        assert_eq!(TimePolicy::Keep.build_time(now), now);
        assert_eq!(TimePolicy::Clamp(1000).apply(t), Timestamp::from_secs(1000));
        assert_eq!(TimePolicy::Clamp(1000).apply(early), early);
        assert_eq!(TimePolicy::Clamp(2000).apply(t), Timestamp::from_secs(2000));
        assert_eq!(
            TimePolicy::Clamp(1000).build_time(now),
            Timestamp::from_secs(1000)
        );
        assert_eq!(TimePolicy::Force(7).apply(early), Timestamp::from_secs(7));
        assert_eq!(
            TimePolicy::Force(7).build_time(now),
            Timestamp::from_secs(7)
        );
        let mut m = Metadata::new(0o644, t);
        m.atime = early;
        TimePolicy::Clamp(1000).apply_meta(&mut m);
        assert_eq!((m.atime, m.mtime), (early, Timestamp::from_secs(1000)));
    }
}

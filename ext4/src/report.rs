//! What writing an image tells the caller: how far it has got, and what it produced.

/// What [`crate::FsBuilder::write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteReport {
    /// Apparent size of the image file in bytes.
    pub size_bytes: u64,
    /// Blocks in use (data and metadata).
    pub blocks_used: u64,
    /// Inodes in use, including the reserved ones (1..=11).
    pub inodes_used: u64,
    /// Inodes in all (`s_inodes_count`).
    pub inodes_count: u64,
    /// Filesystem size in blocks.
    pub blocks_count: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Journal length in blocks (0 without a journal).
    pub journal_blocks: u64,
    /// `Some(n)` when a journal was asked for ([`crate::Options::journal`])
    /// but the filesystem has none because it is too small for one: under
    /// `n` bytes (2048 blocks, as mke2fs: "Filesystem too small for a
    /// journal").
    pub no_journal_below: Option<u64>,
    /// The filesystem UUID.
    pub uuid: [u8; 16],
}

/// What [`crate::FsBuilder::check`] found: the image would fit, at this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Apparent size the image file would have, in bytes.
    pub size_bytes: u64,
    /// Filesystem size in blocks.
    pub blocks_count: u64,
    /// Inodes the contents need, the reserved ones included.
    pub inodes_used: u64,
    /// Inodes in all.
    pub inodes_count: u64,
    /// As [`WriteReport::no_journal_below`]: the image will have no journal,
    /// though one was asked for, being under this many bytes.
    pub no_journal_below: Option<u64>,
}

/// How far [`crate::FsBuilder::write_with_progress`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of contents (file data, directories, symlink targets) written so far.
    pub bytes_done: u64,
    /// Bytes of contents in the whole image.
    pub bytes_total: u64,
}

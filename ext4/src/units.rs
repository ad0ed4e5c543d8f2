//! Newtypes for units that must not be mixed.

/// A block number within the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockNo(pub u64);

impl BlockNo {
    /// The block `n` blocks further on.
    pub fn plus(self, n: u64) -> BlockNo {
        BlockNo(self.0 + n)
    }

    /// Byte offset of this block in the image.
    pub fn byte_offset(self, block_size: u32) -> u64 {
        self.0 * u64::from(block_size)
    }
}

/// An inode number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InodeNo(pub u32);

impl InodeNo {
    /// The root directory.
    pub const ROOT: InodeNo = InodeNo(2);
    /// The resize inode (reserved GDT blocks).
    pub const RESIZE: InodeNo = InodeNo(7);
    /// The journal.
    pub const JOURNAL: InodeNo = InodeNo(8);
    /// `lost+found` (first non-reserved inode).
    pub const LOST_FOUND: InodeNo = InodeNo(11);
    /// First inode available for user files after lost+found.
    pub const FIRST_FREE: InodeNo = InodeNo(12);
}

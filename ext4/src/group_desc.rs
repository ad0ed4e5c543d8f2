//! The 64-byte block group descriptor (64bit feature).

use crate::bytes::{hi32, lo32, put_u16, put_u32};
use crate::checksum::Checksum;

pub(crate) const DESC_SIZE: usize = 64;
pub(crate) const EXT4_BG_INODE_UNINIT: u16 = 0x1;
pub(crate) const EXT4_BG_INODE_ZEROED: u16 = 0x4;

/// One group's descriptor.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupDesc {
    pub bg_block_bitmap: u64,
    pub bg_inode_bitmap: u64,
    pub bg_inode_table: u64,
    pub bg_free_blocks_count: u32,
    pub bg_free_inodes_count: u32,
    pub bg_used_dirs_count: u32,
    pub bg_flags: u16,
    pub bg_block_bitmap_csum: u32,
    pub bg_inode_bitmap_csum: u32,
    pub bg_itable_unused: u32,
}

impl GroupDesc {
    /// Serializes group `group`'s descriptor with its checksum.
    pub fn to_bytes(&self, group: u32, csum_seed: u32) -> [u8; DESC_SIZE] {
        let mut b = [0u8; DESC_SIZE];
        put_u32(&mut b, 0x0, lo32(self.bg_block_bitmap));
        put_u32(&mut b, 0x4, lo32(self.bg_inode_bitmap));
        put_u32(&mut b, 0x8, lo32(self.bg_inode_table));
        put_u16(&mut b, 0xC, (self.bg_free_blocks_count & 0xFFFF) as u16);
        put_u16(&mut b, 0xE, (self.bg_free_inodes_count & 0xFFFF) as u16);
        put_u16(&mut b, 0x10, (self.bg_used_dirs_count & 0xFFFF) as u16);
        put_u16(&mut b, 0x12, self.bg_flags);
        put_u16(&mut b, 0x18, (self.bg_block_bitmap_csum & 0xFFFF) as u16);
        put_u16(&mut b, 0x1A, (self.bg_inode_bitmap_csum & 0xFFFF) as u16);
        put_u16(&mut b, 0x1C, (self.bg_itable_unused & 0xFFFF) as u16);
        put_u32(&mut b, 0x20, hi32(self.bg_block_bitmap));
        put_u32(&mut b, 0x24, hi32(self.bg_inode_bitmap));
        put_u32(&mut b, 0x28, hi32(self.bg_inode_table));
        put_u16(&mut b, 0x2C, (self.bg_free_blocks_count >> 16) as u16);
        put_u16(&mut b, 0x2E, (self.bg_free_inodes_count >> 16) as u16);
        put_u16(&mut b, 0x30, (self.bg_used_dirs_count >> 16) as u16);
        put_u16(&mut b, 0x32, (self.bg_itable_unused >> 16) as u16);
        put_u16(&mut b, 0x38, (self.bg_block_bitmap_csum >> 16) as u16);
        put_u16(&mut b, 0x3A, (self.bg_inode_bitmap_csum >> 16) as u16);
        // bg_checksum: crc32c(seed, group) over the descriptor with the field zeroed, low 16 bits.
        let mut c = Checksum::with_seed(csum_seed);
        c.update_u32(group).update(&b);
        put_u16(&mut b, 0x1E, (c.value() & 0xFFFF) as u16);
        b
    }
}

//! The ext4 superblock (1024 bytes at byte 1024, backups in sparse groups).

use crate::bytes::{hi32, lo32, put_u8, put_u16, put_u32, put_u64};
use crate::checksum::Checksum;

pub(crate) const EXT4_SUPER_MAGIC: u16 = 0xEF53;
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;

// s_feature_compat
pub(crate) const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub(crate) const COMPAT_EXT_ATTR: u32 = 0x8;
pub(crate) const COMPAT_RESIZE_INODE: u32 = 0x10;
pub(crate) const COMPAT_DIR_INDEX: u32 = 0x20;
// s_feature_incompat
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
pub(crate) const INCOMPAT_META_BG: u32 = 0x10;
pub(crate) const INCOMPAT_EXTENTS: u32 = 0x40;
pub(crate) const INCOMPAT_64BIT: u32 = 0x80;
pub(crate) const INCOMPAT_FLEX_BG: u32 = 0x200;
// s_feature_ro_compat
pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub(crate) const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub(crate) const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub(crate) const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// Field values of a superblock; everything else is zero or a constant.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub s_inodes_count: u32,
    pub s_blocks_count: u64,
    pub s_r_blocks_count: u64,
    pub s_free_blocks_count: u64,
    pub s_free_inodes_count: u32,
    pub s_first_data_block: u32,
    pub s_log_block_size: u32,
    pub s_blocks_per_group: u32,
    pub s_inodes_per_group: u32,
    pub s_time: u32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_hash_seed: [u8; 16],
    pub s_journal_inum: u32,
    pub s_jnl_blocks: [u32; 17],
    pub s_log_groups_per_flex: u8,
    pub s_overhead_clusters: u32,
    pub s_kbytes_written: u64,
    /// `s_reserved_gdt_blocks`; nonzero: `resize_inode` (inode 7).
    pub s_reserved_gdt_blocks: u16,
    /// `meta_bg`, with `s_first_meta_bg` = 0 (as mke2fs).
    pub meta_bg: bool,
}

impl Superblock {
    pub fn has_journal(&self) -> bool {
        self.s_journal_inum != 0
    }

    /// Serializes with `s_block_group_nr = group` and the checksum filled in.
    pub fn to_bytes(&self, group: u16) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        put_u32(&mut b, 0x0, self.s_inodes_count);
        put_u32(&mut b, 0x4, lo32(self.s_blocks_count));
        put_u32(&mut b, 0x8, lo32(self.s_r_blocks_count));
        put_u32(&mut b, 0xC, lo32(self.s_free_blocks_count));
        put_u32(&mut b, 0x10, self.s_free_inodes_count);
        put_u32(&mut b, 0x14, self.s_first_data_block);
        put_u32(&mut b, 0x18, self.s_log_block_size);
        put_u32(&mut b, 0x1C, self.s_log_block_size); // s_log_cluster_size
        put_u32(&mut b, 0x20, self.s_blocks_per_group);
        put_u32(&mut b, 0x24, self.s_blocks_per_group); // s_clusters_per_group
        put_u32(&mut b, 0x28, self.s_inodes_per_group);
        // s_mtime (0x2C) stays 0: never mounted.
        put_u32(&mut b, 0x30, self.s_time); // s_wtime
        put_u16(&mut b, 0x36, 0xFFFF); // s_max_mnt_count = -1
        put_u16(&mut b, 0x38, EXT4_SUPER_MAGIC);
        put_u16(&mut b, 0x3A, 1); // s_state: clean
        put_u16(&mut b, 0x3C, 1); // s_errors: continue
        put_u32(&mut b, 0x40, self.s_time); // s_lastcheck
        put_u32(&mut b, 0x4C, 1); // s_rev_level: dynamic
        put_u32(&mut b, 0x54, 11); // s_first_ino
        put_u16(&mut b, 0x58, 256); // s_inode_size
        put_u16(&mut b, 0x5A, group); // s_block_group_nr
        let mut compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
        if self.has_journal() {
            compat |= COMPAT_HAS_JOURNAL;
        }
        if self.s_reserved_gdt_blocks > 0 {
            compat |= COMPAT_RESIZE_INODE;
        }
        put_u32(&mut b, 0x5C, compat);
        let mut incompat = INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
        if self.meta_bg {
            incompat |= INCOMPAT_META_BG;
        }
        put_u32(&mut b, 0x60, incompat);
        put_u32(
            &mut b,
            0x64,
            RO_COMPAT_SPARSE_SUPER
                | RO_COMPAT_LARGE_FILE
                | RO_COMPAT_HUGE_FILE
                | RO_COMPAT_DIR_NLINK
                | RO_COMPAT_EXTRA_ISIZE
                | RO_COMPAT_METADATA_CSUM,
        );
        b[0x68..0x78].copy_from_slice(&self.s_uuid);
        b[0x78..0x88].copy_from_slice(&self.s_volume_name);
        put_u16(&mut b, 0xCE, self.s_reserved_gdt_blocks);
        put_u32(&mut b, 0xE0, self.s_journal_inum);
        b[0xEC..0xFC].copy_from_slice(&self.s_hash_seed);
        put_u8(&mut b, 0xFC, 1); // s_def_hash_version: half_md4
        if self.has_journal() {
            put_u8(&mut b, 0xFD, 1); // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
            for (i, v) in self.s_jnl_blocks.iter().enumerate() {
                put_u32(&mut b, 0x10C + 4 * i, *v);
            }
        }
        put_u16(&mut b, 0xFE, 64); // s_desc_size
        put_u32(&mut b, 0x100, 0x0C); // s_default_mount_opts: user_xattr | acl
        put_u32(&mut b, 0x108, self.s_time); // s_mkfs_time
        put_u32(&mut b, 0x150, hi32(self.s_blocks_count));
        put_u32(&mut b, 0x154, hi32(self.s_r_blocks_count));
        put_u32(&mut b, 0x158, hi32(self.s_free_blocks_count));
        put_u16(&mut b, 0x15C, 32); // s_min_extra_isize
        put_u16(&mut b, 0x15E, 32); // s_want_extra_isize
        put_u32(&mut b, 0x160, 0x1); // s_flags: signed directory hash
        put_u8(&mut b, 0x174, self.s_log_groups_per_flex);
        put_u8(&mut b, 0x175, 1); // s_checksum_type: crc32c
        put_u64(&mut b, 0x178, self.s_kbytes_written);
        put_u32(&mut b, 0x248, self.s_overhead_clusters);
        let csum = Checksum::new().update(&b[..0x3FC]).value();
        put_u32(&mut b, 0x3FC, csum); // s_checksum
        b
    }
}

/// The seed every other metadata checksum starts from: crc32c(~0, uuid).
pub(crate) fn csum_seed(uuid: &[u8; 16]) -> u32 {
    Checksum::new().update(uuid).value()
}

/// Whether group `g` holds a superblock backup under sparse_super.
pub(crate) fn group_has_super(g: u32) -> bool {
    if g <= 1 {
        return true;
    }
    for base in [3u32, 5, 7] {
        let mut p = base;
        while p < g {
            match p.checked_mul(base) {
                Some(n) => p = n,
                None => break,
            }
        }
        if p == g {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u32> = (0..100).filter(|g| group_has_super(*g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }
}

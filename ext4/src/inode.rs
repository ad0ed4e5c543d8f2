//! The 256-byte on-disk inode with `i_extra_isize` = 32 and nanosecond times.

use crate::bytes::{hi32, lo32, put_u16, put_u32};
use crate::checksum::Checksum;
use crate::options::Timestamp;
use crate::units::InodeNo;

pub(crate) const INODE_SIZE: usize = 256;
pub(crate) const GOOD_OLD_INODE_SIZE: usize = 128;
pub(crate) const EXTRA_ISIZE: u16 = 32;

pub(crate) const EXT4_EXTENTS_FL: u32 = 0x80000;
pub(crate) const EXT4_INDEX_FL: u32 = 0x1000;

/// Field values of one inode; `i_block` is the raw 60 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub i_mode: u16,
    pub i_uid: u32,
    pub i_gid: u32,
    pub i_size: u64,
    pub i_atime: Timestamp,
    pub i_ctime: Timestamp,
    pub i_mtime: Timestamp,
    pub i_crtime: Timestamp,
    pub i_links_count: u16,
    /// In 512-byte sectors.
    pub i_blocks: u64,
    pub i_flags: u32,
    pub i_block: [u8; 60],
    pub i_file_acl: u64,
    /// In-inode extended attribute area (after the extra fields), up to 96 bytes.
    pub ibody_xattrs: Vec<u8>,
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            i_mode: 0,
            i_uid: 0,
            i_gid: 0,
            i_size: 0,
            i_atime: Timestamp::default(),
            i_ctime: Timestamp::default(),
            i_mtime: Timestamp::default(),
            i_crtime: Timestamp::default(),
            i_links_count: 0,
            i_blocks: 0,
            i_flags: 0,
            i_block: [0; 60],
            i_file_acl: 0,
            ibody_xattrs: Vec::new(),
        }
    }
}

/// Splits a time into the 32-bit seconds field and the `_extra` field
/// (nanoseconds << 2 | epoch bits).
pub(crate) fn encode_time(t: Timestamp) -> (u32, u32) {
    let secs = t.sec;
    let lo = (secs & 0xFFFF_FFFF) as u32;
    let epoch = ((secs - i64::from(i32::from_ne_bytes(lo.to_ne_bytes()))) >> 32) & 0x3;
    let extra = (t.nsec.min(999_999_999) << 2) | epoch as u32;
    (lo, extra)
}

impl Inode {
    /// Serializes inode number `ino` (generation 0) with its checksum.
    pub fn to_bytes(&self, ino: InodeNo, csum_seed: u32) -> [u8; INODE_SIZE] {
        let mut b = [0u8; INODE_SIZE];
        let (atime, atime_x) = encode_time(self.i_atime);
        let (ctime, ctime_x) = encode_time(self.i_ctime);
        let (mtime, mtime_x) = encode_time(self.i_mtime);
        let (crtime, crtime_x) = encode_time(self.i_crtime);
        put_u16(&mut b, 0x0, self.i_mode);
        put_u16(&mut b, 0x2, (self.i_uid & 0xFFFF) as u16);
        put_u32(&mut b, 0x4, lo32(self.i_size));
        put_u32(&mut b, 0x8, atime);
        put_u32(&mut b, 0xC, ctime);
        put_u32(&mut b, 0x10, mtime);
        put_u16(&mut b, 0x18, (self.i_gid & 0xFFFF) as u16);
        put_u16(&mut b, 0x1A, self.i_links_count);
        put_u32(&mut b, 0x1C, lo32(self.i_blocks));
        put_u32(&mut b, 0x20, self.i_flags);
        b[0x28..0x64].copy_from_slice(&self.i_block);
        // i_generation (0x64) is 0 for reproducibility.
        put_u32(&mut b, 0x68, lo32(self.i_file_acl));
        put_u32(&mut b, 0x6C, hi32(self.i_size)); // i_size_high
        put_u16(&mut b, 0x74, (self.i_blocks >> 32) as u16); // l_i_blocks_high
        put_u16(&mut b, 0x76, (self.i_file_acl >> 32) as u16); // l_i_file_acl_high
        put_u16(&mut b, 0x78, (self.i_uid >> 16) as u16); // l_i_uid_high
        put_u16(&mut b, 0x7A, (self.i_gid >> 16) as u16); // l_i_gid_high
        put_u16(&mut b, 0x80, EXTRA_ISIZE); // i_extra_isize
        put_u32(&mut b, 0x84, ctime_x);
        put_u32(&mut b, 0x88, mtime_x);
        put_u32(&mut b, 0x8C, atime_x);
        put_u32(&mut b, 0x90, crtime);
        put_u32(&mut b, 0x94, crtime_x);
        let xa = GOOD_OLD_INODE_SIZE + usize::from(EXTRA_ISIZE);
        b[xa..xa + self.ibody_xattrs.len()].copy_from_slice(&self.ibody_xattrs);
        let c = inode_csum(&b, ino, csum_seed);
        put_u16(&mut b, 0x7C, (c & 0xFFFF) as u16); // l_i_checksum_lo
        put_u16(&mut b, 0x82, (c >> 16) as u16); // i_checksum_hi
        b
    }
}

/// Per-inode seed: crc32c(fs seed, inode number, generation 0). Also seeds extent and
/// directory block checksums.
pub(crate) fn inode_seed(ino: InodeNo, csum_seed: u32) -> u32 {
    Checksum::with_seed(csum_seed)
        .update_u32(ino.0)
        .update_u32(0)
        .value()
}

/// The inode checksum over all 256 bytes with both checksum fields zero.
pub(crate) fn inode_csum(raw: &[u8; INODE_SIZE], ino: InodeNo, csum_seed: u32) -> u32 {
    let mut tmp = *raw;
    tmp[0x7C..0x7E].fill(0);
    tmp[0x82..0x84].fill(0);
    Checksum::with_seed(inode_seed(ino, csum_seed))
        .update(&tmp)
        .value()
}

/// Device number in `i_block`: old 16-bit encoding in word 0 when it fits,
/// else the new encoding in word 1 (as the kernel's ext4_set_inode_rdev).
pub(crate) fn encode_dev(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        put_u32(&mut b, 0, (major << 8) | minor);
    } else {
        let new = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & !0xFF) << 12);
        put_u32(&mut b, 4, new);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::S_IFREG;

    #[test]
    fn time_encoding() {
        assert_eq!(encode_time(Timestamp { sec: 1, nsec: 5 }), (1, 20));
        // 2038+ uses epoch bit 1.
        assert_eq!(
            encode_time(Timestamp {
                sec: 1 << 31,
                nsec: 0
            }),
            (0x8000_0000, 1)
        );
        // Pre-1970 has epoch 0 and a negative 32-bit value.
        assert_eq!(
            encode_time(Timestamp { sec: -1, nsec: 0 }),
            (0xFFFF_FFFF, 0)
        );
    }

    #[test]
    fn device_encodings() {
        assert_eq!(&encode_dev(8, 1)[..4], &0x0801u32.to_le_bytes());
        let b = encode_dev(259, 300);
        assert_eq!(&b[..4], &[0; 4]);
        assert_eq!(
            &b[4..8],
            &((300u32 & 0xFF) | (259 << 8) | ((300 & !0xFF) << 12)).to_le_bytes()
        );
    }

    #[test]
    fn checksum_fields_in_place() {
        let ino = Inode {
            i_mode: S_IFREG | 0o644,
            i_links_count: 1,
            ..Default::default()
        };
        let b = ino.to_bytes(InodeNo(12), 0x1234_5678);
        let c = inode_csum(&b, InodeNo(12), 0x1234_5678);
        assert_eq!(crate::bytes::get_u16(&b, 0x7C), (c & 0xFFFF) as u16);
        assert_eq!(crate::bytes::get_u16(&b, 0x82), (c >> 16) as u16);
    }
}

//! Block and inode bitmaps: an in-memory bit set and the on-disk block form.

use crate::checksum::Checksum;

/// A fixed-size bit set.
#[derive(Debug, Clone)]
pub(crate) struct BitSet {
    words: Vec<u64>,
    len: u64,
}

impl BitSet {
    pub fn new(len: u64) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn get(&self, i: u64) -> bool {
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub fn set(&mut self, i: u64) {
        self.words[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// First clear bit at or after `from`.
    pub fn next_clear(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            let w = self.words[(i / 64) as usize] | ((1u64 << (i % 64)) - 1);
            if w != u64::MAX {
                let bit = (i / 64) * 64 + u64::from((!w).trailing_zeros());
                return (bit < self.len).then_some(bit);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// Number of set bits in `[start, end)`.
    pub fn count_ones(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        let mut i = start;
        // Bit by bit up to a word boundary, then whole words, then the tail.
        while i < end && i % 64 != 0 {
            n += u64::from(self.get(i));
            i += 1;
        }
        while i + 64 <= end {
            n += u64::from(self.words[(i / 64) as usize].count_ones());
            i += 64;
        }
        while i < end {
            n += u64::from(self.get(i));
            i += 1;
        }
        n
    }
}

/// Builds one on-disk bitmap block: bits `[0, used_bits)` from `bit(i)`, the rest of the
/// block (padding beyond the group's last item) set to 1 as mke2fs does.
pub(crate) fn bitmap_block(
    block_size: usize,
    used_bits: u64,
    bit: impl Fn(u64) -> bool,
) -> Vec<u8> {
    let mut b = vec![0xFFu8; block_size];
    for byte in 0..used_bits.div_ceil(8) {
        let mut v = 0u8;
        for k in 0..8 {
            let i = byte * 8 + k;
            if i >= used_bits || bit(i) {
                v |= 1 << k;
            }
        }
        b[byte as usize] = v;
    }
    b
}

/// Bitmap checksum: crc32c(seed, first `bytes` bytes of the bitmap).
pub(crate) fn bitmap_csum(csum_seed: u32, block: &[u8], bytes: usize) -> u32 {
    Checksum::with_seed(csum_seed)
        .update(&block[..bytes])
        .value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_clear_skips_full_words() {
        let mut s = BitSet::new(200);
        for i in 0..130 {
            s.set(i);
        }
        assert_eq!(s.next_clear(0), Some(130));
        assert_eq!(s.next_clear(131), Some(131));
        for i in 130..200 {
            s.set(i);
        }
        assert_eq!(s.next_clear(0), None);
        assert_eq!(s.count_ones(10, 20), 10);
        assert_eq!(s.count_ones(1, 200), 199);
        assert_eq!(s.count_ones(63, 129), 66);
    }

    #[test]
    fn bitmap_block_pads_with_ones() {
        let b = bitmap_block(16, 12, |i| i == 0 || i == 9);
        assert_eq!(b[0], 0b0000_0001);
        assert_eq!(b[1], 0b1111_0010);
        assert!(b[2..].iter().all(|&x| x == 0xFF));
    }
}

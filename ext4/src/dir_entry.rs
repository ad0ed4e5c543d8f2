//! Linear directory blocks (`ext4_dir_entry_2`) with the metadata_csum tail.

use crate::bytes::{put_u8, put_u16, put_u32};
use crate::checksum::Checksum;
use crate::units::InodeNo;

/// `ext4_dir_entry_tail` size.
pub(crate) const TAIL_SIZE: usize = 12;

// file_type values
pub(crate) const FT_REG_FILE: u8 = 1;
pub(crate) const FT_DIR: u8 = 2;
pub(crate) const FT_CHRDEV: u8 = 3;
pub(crate) const FT_BLKDEV: u8 = 4;
pub(crate) const FT_FIFO: u8 = 5;
pub(crate) const FT_SOCK: u8 = 6;
pub(crate) const FT_SYMLINK: u8 = 7;

/// Space an entry with `name_len` bytes takes: 8-byte header + name, 4-aligned.
pub(crate) fn rec_len(name_len: usize) -> usize {
    (8 + name_len).div_ceil(4) * 4
}

/// Packs entries into blocks, handing each finished block to `emit`.
#[derive(Debug)]
pub(crate) struct DirBlockWriter {
    block_size: usize,
    buf: Vec<u8>,
    pos: usize,
    last: Option<usize>,
    /// Per-inode checksum seed; None = only count.
    seed: u32,
    blocks: usize,
}

impl DirBlockWriter {
    pub fn new(block_size: u32, inode_seed: u32) -> Self {
        DirBlockWriter {
            block_size: block_size as usize,
            buf: vec![0; block_size as usize],
            pos: 0,
            last: None,
            seed: inode_seed,
            blocks: 0,
        }
    }

    fn usable(&self) -> usize {
        self.block_size - TAIL_SIZE
    }

    /// Adds one entry.
    pub fn add(
        &mut self,
        inode: InodeNo,
        name: &[u8],
        file_type: u8,
        emit: &mut impl FnMut(&[u8]),
    ) {
        let need = rec_len(name.len());
        if self.pos + need > self.usable() {
            self.flush(emit);
        }
        let off = self.pos;
        let b = &mut self.buf;
        put_u32(b, off, inode.0);
        put_u16(b, off + 4, need as u16);
        put_u8(b, off + 6, name.len() as u8);
        put_u8(b, off + 7, file_type);
        b[off + 8..off + 8 + name.len()].copy_from_slice(name);
        self.last = Some(off);
        self.pos += need;
    }

    /// Closes the current block: the last entry's rec_len reaches the tail.
    fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        let usable = self.usable();
        match self.last {
            Some(off) => put_u16(&mut self.buf, off + 4, (usable - off) as u16),
            None => {
                // An empty block: one unused entry spanning it.
                put_u32(&mut self.buf, 0, 0);
                put_u16(&mut self.buf, 4, usable as u16);
            }
        }
        // ext4_dir_entry_tail: inode 0, rec_len 12, name_len 0, file_type 0xDE, checksum.
        let t = usable;
        put_u32(&mut self.buf, t, 0);
        put_u16(&mut self.buf, t + 4, TAIL_SIZE as u16);
        put_u8(&mut self.buf, t + 6, 0);
        put_u8(&mut self.buf, t + 7, 0xDE);
        let c = Checksum::with_seed(self.seed)
            .update(&self.buf[..t])
            .value();
        put_u32(&mut self.buf, t + 8, c);
        emit(&self.buf);
        self.blocks += 1;
        self.buf.fill(0);
        self.pos = 0;
        self.last = None;
    }

    /// Closes the current block if it holds entries (htree leaves end here).
    pub fn end_block(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.last.is_some() {
            self.flush(emit);
        }
    }

    /// Emits an entirely empty block (lost+found's spare blocks).
    pub fn empty_block(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.last.is_some() {
            self.flush(emit);
        }
        self.flush(emit);
    }

    /// Finishes the last block; returns the number of blocks emitted.
    pub fn finish(mut self, emit: &mut impl FnMut(&[u8])) -> usize {
        if self.last.is_some() {
            self.flush(emit);
        }
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{get_u16, get_u32};

    #[test]
    fn packs_and_tails() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut emit = |b: &[u8]| out.push(b.to_vec());
        let mut w = DirBlockWriter::new(1024, 99);
        w.add(InodeNo(2), b".", FT_DIR, &mut emit);
        w.add(InodeNo(2), b"..", FT_DIR, &mut emit);
        for i in 0..100u32 {
            w.add(
                InodeNo(100 + i),
                format!("file-{i:04}").as_bytes(),
                FT_REG_FILE,
                &mut emit,
            );
        }
        let n = w.finish(&mut emit);
        assert_eq!(n, out.len());
        assert_eq!(rec_len(9), 20);
        // 1012 usable bytes / 20 per entry.
        assert_eq!(n, 3);
        let b = &out[0];
        assert_eq!(get_u16(b, 4), 12);
        assert_eq!(get_u16(b, 1012 + 4), 12);
        assert_eq!(b[1012 + 7], 0xDE);
        let c = Checksum::with_seed(99).update(&b[..1012]).value();
        assert_eq!(get_u32(b, 1020), c);
        // The walk of rec_lens ends exactly at the tail.
        let mut off = 0;
        while off < 1012 {
            off += usize::from(get_u16(b, off + 4));
        }
        assert_eq!(off, 1012);
    }
}

//! Little-endian field writers for on-disk structures.

pub(crate) fn put_u8(b: &mut [u8], off: usize, v: u8) {
    b[off] = v;
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

#[cfg(test)]
pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Low 32 bits of a 64-bit value (the `_lo` half of a split field).
pub(crate) fn lo32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

/// High 32 bits of a 64-bit value.
pub(crate) fn hi32(v: u64) -> u32 {
    (v >> 32) as u32
}

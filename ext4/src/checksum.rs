//! crc32c as ext4 uses it: the kernel's `crc32c_le(seed, data)`, no final inversion.

/// A running ext4-style crc32c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(u32);

impl Checksum {
    /// Starts from the seed `!0` (`crc32c_le(~0, ...)`).
    pub fn new() -> Self {
        Checksum(!0)
    }

    /// Starts from an explicit seed (e.g. the filesystem's checksum seed).
    pub fn with_seed(seed: u32) -> Self {
        Checksum(seed)
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        // The crate computes the standard (inverted in and out) CRC; undo both inversions.
        self.0 = !crc32c::crc32c_append(!self.0, data);
        self
    }

    /// Feeds a little-endian u32.
    pub fn update_u32(&mut self, v: u32) -> &mut Self {
        self.update(&v.to_le_bytes())
    }

    /// The raw value as the kernel stores it.
    pub fn value(&self) -> u32 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_standard_crc32c_after_inversion() {
        // Standard CRC-32C check value for "123456789" is 0xE3069283.
        assert_eq!(!Checksum::new().update(b"123456789").value(), 0xE306_9283);
    }

    #[test]
    fn chaining_equals_one_shot() {
        let mut a = Checksum::new();
        a.update(b"hello ").update(b"world");
        assert_eq!(a.value(), Checksum::new().update(b"hello world").value());
    }
}

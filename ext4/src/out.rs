//! The image file being written: positioned writes of bytes and whole blocks.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::Error;
use crate::units::BlockNo;

/// The image being written.
pub(crate) struct Out {
    pub file: File,
    pub path: PathBuf,
    pub bs: u32,
}

impl Out {
    /// Writes `data` at byte `offset` of the image.
    pub fn at(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::Output {
                path: self.path.clone(),
                source: e,
            })
    }

    /// Writes `data` starting at the first byte of `block`.
    pub fn block(&self, block: BlockNo, data: &[u8]) -> Result<(), Error> {
        self.at(block.byte_offset(self.bs), data)
    }
}

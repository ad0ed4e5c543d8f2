//! `ext4fs-builder`: write ext4 filesystem images without root, loop devices or mke2fs.
//!
//! Build a [`FsBuilder`] from [`Options`], add a host tree with [`FsBuilder::add_tree`]
//! and/or single entries with [`FsBuilder::add`], then [`FsBuilder::write`] the image.
//! The result has the mke2fs ext4 feature set (minus `resize_inode`): flex_bg,
//! sparse_super, 64bit, extents, huge_file, dir_nlink, extra_isize, metadata_csum and
//! an internal jbd2 journal. File contents are streamed from the source at write time.
#![forbid(unsafe_code)]

mod bitmap;
mod bytes;
mod checksum;
mod data;
mod dir_entry;
mod dx_hash;
mod error;
mod extent;
mod group_desc;
mod htree;
mod inode;
mod journal;
mod layout;
mod options;
mod plan;
#[cfg(test)]
mod reference_tests;
mod size;
mod source;
mod superblock;
mod tree;
mod units;
mod writer;
mod writer_inodes;
mod xattr;

use std::collections::HashMap;
use std::path::Path;

pub use error::Error;
pub use options::{
    BlockSize, EntryKind, FileData, Metadata, Options, OwnerPolicy, ParseSizeError, SizeSpec,
    Timestamp,
};
pub use units::{BlockNo, InodeNo};

/// What [`FsBuilder::write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteReport {
    /// Apparent size of the image file in bytes.
    pub size_bytes: u64,
    /// Blocks in use (data and metadata).
    pub blocks_used: u64,
    /// Inodes in use, including the reserved ones (1..=11).
    pub inodes_used: u64,
    /// Filesystem size in blocks.
    pub blocks_count: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Journal length in blocks (0 without a journal).
    pub journal_blocks: u64,
    /// The filesystem UUID.
    pub uuid: [u8; 16],
}

/// Collects entries, then writes an ext4 image.
#[derive(Debug)]
pub struct FsBuilder {
    opts: Options,
    tree: tree::Tree,
    build_time: Timestamp,
    clamp: Option<i64>,
}

impl FsBuilder {
    /// Starts an empty filesystem (root and lost+found only).
    pub fn new(opts: Options) -> FsBuilder {
        let explicit = opts.timestamp.or_else(|| {
            std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
        });
        let build_time = Timestamp::from_secs(explicit.unwrap_or(0));
        let mut tree = tree::Tree::new(build_time);
        let lf = Metadata::new(0o700, build_time);
        // Cannot fail: fixed, valid path under an empty root.
        let _ = tree.add("/lost+found", EntryKind::Dir, lf);
        FsBuilder {
            opts,
            tree,
            build_time,
            clamp: explicit,
        }
    }

    /// The build timestamp in effect (option, else `SOURCE_DATE_EPOCH`, else 0).
    pub fn build_time(&self) -> Timestamp {
        self.build_time
    }

    /// Adds (recursively, sorted by name) the host directory's contents under `dest`
    /// (absolute image path, e.g. "/"). `dest` takes the host directory's metadata.
    pub fn add_tree(&mut self, host_dir: &Path, dest: &str) -> Result<(), Error> {
        let mut w = source::Walker {
            tree: &mut self.tree,
            owner: self.opts.owner,
            clamp: self.clamp,
            links: HashMap::new(),
        };
        let meta = w.dir_meta(host_dir)?;
        let id = w.tree.add(dest, EntryKind::Dir, meta)?;
        w.walk(host_dir, id)
    }

    /// Adds one entry at an absolute image path; missing parents are created 0755
    /// root:root. An existing file is replaced; an existing directory gets new metadata.
    pub fn add(&mut self, path: &str, kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        self.tree.add(path, kind, meta).map(|_| ())
    }

    /// Writes the image to a temp file next to `image` and renames it into place.
    pub fn write(self, image: &Path) -> Result<WriteReport, Error> {
        self.write_with_progress(image, &mut |_| {})
    }

    /// [`FsBuilder::write`], calling `progress` as file contents are written
    /// (after each inode), e.g. to drive a progress bar.
    pub fn write_with_progress(
        mut self,
        image: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<WriteReport, Error> {
        writer::write(&mut self.tree, &self.opts, self.build_time, image, progress)
    }
}

/// How far [`FsBuilder::write_with_progress`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of contents (file data, directories, symlink targets) written so far.
    pub bytes_done: u64,
    /// Bytes of contents in the whole image.
    pub bytes_total: u64,
}

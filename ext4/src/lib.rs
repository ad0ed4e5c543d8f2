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
mod mode;
mod options;
mod out;
mod plan;
#[cfg(test)]
mod reference_tests;
mod report;
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
    Timestamp, TreeOverrides,
};
pub use report::{Fit, Progress, WriteReport};
pub use units::{BlockNo, InodeNo};

/// Collects entries, then writes an ext4 image.
#[derive(Debug)]
pub struct FsBuilder {
    opts: Options,
    tree: tree::Tree,
    build_time: Timestamp,
}

impl FsBuilder {
    /// Starts an empty filesystem (root and lost+found only).
    ///
    /// The build time is [`Options::timestamp`], else 0; the environment
    /// (`SOURCE_DATE_EPOCH`) is never read: callers that honour it pass it in.
    pub fn new(opts: Options) -> FsBuilder {
        let build_time = Timestamp::from_secs(opts.timestamp.unwrap_or(0));
        let mut tree = tree::Tree::new(build_time);
        let lf = Metadata::new(0o700, build_time);
        // Cannot fail: fixed, valid path under an empty root.
        let _ = tree.add("/lost+found", EntryKind::Dir, lf);
        FsBuilder {
            opts,
            tree,
            build_time,
        }
    }

    /// The build timestamp in effect ([`Options::timestamp`], else 0).
    pub fn build_time(&self) -> Timestamp {
        self.build_time
    }

    /// Adds (recursively, sorted by name) the host directory's contents under `dest`
    /// (absolute image path, e.g. "/"). `dest` takes the host directory's metadata.
    /// All four times of an entry are the source's mtime, clamped to
    /// [`Options::timestamp`] when that is set.
    pub fn add_tree(&mut self, host_dir: &Path, dest: &str) -> Result<(), Error> {
        self.add_tree_with(host_dir, dest, TreeOverrides::default())
    }

    /// [`FsBuilder::add_tree`], with the modes or owner of `overrides`
    /// instead of the source's.
    pub fn add_tree_with(
        &mut self,
        host_dir: &Path,
        dest: &str,
        overrides: TreeOverrides,
    ) -> Result<(), Error> {
        let mut w = source::Walker {
            tree: &mut self.tree,
            owner: self.opts.owner,
            clamp: self.opts.timestamp,
            links: HashMap::new(),
            overrides,
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

    /// Decides everything a write would (geometry, size, where everything
    /// goes) without writing: the image's size, or why the contents do not
    /// fit. Host files are only looked at (sizes, holes), not read.
    pub fn check(&mut self) -> Result<Fit, Error> {
        writer::check(&mut self.tree, &self.opts, self.build_time)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory holding one file, `f`, whose mtime is the current time.
    fn host_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ext4-lib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), b"x").unwrap();
        d
    }

    /// The mtime `add_tree` gave `/f` of `host` under these options.
    fn added_mtime(host: &Path, timestamp: Option<i64>) -> Timestamp {
        let mut b = FsBuilder::new(Options {
            timestamp,
            ..Options::default()
        });
        b.add_tree(host, "/").unwrap();
        let id = b.tree.lookup("/f").unwrap().expect("/f added");
        b.tree.nodes[id].meta.mtime
    }

    #[test]
    fn build_time_is_the_option_else_zero_whatever_the_environment() {
        // Read only: whatever SOURCE_DATE_EPOCH this process was started with
        // (tests/source_date_epoch.rs runs a child with it set).
        let env = std::env::var("SOURCE_DATE_EPOCH");
        let b = FsBuilder::new(Options::default());
        assert_eq!(b.build_time(), Timestamp::from_secs(0), "{env:?}");
        let b = FsBuilder::new(Options {
            timestamp: Some(1_234_567_890),
            ..Options::default()
        });
        assert_eq!(b.build_time(), Timestamp::from_secs(1_234_567_890));
    }

    #[test]
    fn add_tree_clamps_to_the_option_only() {
        let host = host_dir("clamp");
        let m = std::fs::metadata(host.join("f")).unwrap();
        let source = Timestamp {
            sec: m.mtime(),
            nsec: m.mtime_nsec() as u32,
        };
        assert!(
            source.sec > 1000,
            "host clock before 1970+1000s: {source:?}"
        );
        let unclamped = added_mtime(&host, None);
        let clamped = added_mtime(&host, Some(1000));
        std::fs::remove_dir_all(&host).unwrap();
        assert_eq!(unclamped, source);
        assert_eq!(clamped, Timestamp::from_secs(1000));
    }
}

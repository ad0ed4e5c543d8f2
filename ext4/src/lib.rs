//! `ext4fs-builder`: write ext4 filesystem images without root, loop devices or mke2fs.
//!
//! Build a [`FsBuilder`] from [`Options`], add a host tree with [`FsBuilder::add_tree`]
//! and/or single entries with [`FsBuilder::add`], then [`FsBuilder::write`] the image.
//! The result has the mke2fs ext4 feature set: resize_inode (room to grow online,
//! [`Options::resize_inode`]), flex_bg, sparse_super, 64bit, extents, huge_file,
//! dir_nlink, extra_isize, metadata_csum and an internal jbd2 journal; meta_bg where
//! mke2fs switches it on. File contents are streamed from the source at write time.
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
mod resize_inode;
mod size;
mod source;
mod spool;
mod superblock;
mod tar;
mod tar_header;
mod tree;
mod units;
mod writer;
mod writer_inodes;
mod xattr;

use std::collections::HashMap;
use std::path::Path;

pub use error::Error;
pub use options::{
    BlockSize, Entry, EntryKind, EntryType, FileData, FileRegion, InodeSpec, Metadata, Options,
    OwnerPolicy, ParseSizeError, SizeSpec, TimePolicy, Timestamp, TreeOverrides,
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
    /// The build time is that of [`Options::times`] (the wall clock now
    /// under [`TimePolicy::Keep`]); the environment (`SOURCE_DATE_EPOCH`) is
    /// never read: callers that honour it pass [`TimePolicy::Clamp`].
    pub fn new(opts: Options) -> FsBuilder {
        let build_time = opts.times.build_time(Timestamp::now());
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

    /// The build time in effect (see [`TimePolicy`]): the root's,
    /// `lost+found`'s and the superblock's time.
    pub fn build_time(&self) -> Timestamp {
        self.build_time
    }

    /// Adds (recursively, sorted by name) the host directory's contents under `dest`
    /// (absolute image path, e.g. "/"). `dest` takes the host directory's metadata.
    /// An entry keeps the source's atime, mtime and ctime (crtime = mtime), through
    /// [`Options::times`]. The walk goes a directory file descriptor at a time (one
    /// open per directory level), so paths longer than `PATH_MAX` are fine.
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
            times: self.opts.times,
            links: HashMap::new(),
            overrides,
        };
        let (dir, meta) = w.open_top(host_dir)?;
        let id = w.tree.add(dest, EntryKind::Dir, meta)?;
        w.walk(&dir, host_dir, id)
    }

    /// Adds the members of a tar archive (uncompressed: ustar, GNU or POSIX
    /// pax, as GNU tar and libarchive write them) under `dest`, read from
    /// `archive` as a stream: owners (numeric), modes, all file types, hard
    /// links, times with nanoseconds (pax `mtime`, `atime`, `ctime`; through
    /// [`Options::times`]), xattrs (`SCHILY.xattr.*`) and sparse members (GNU
    /// old, pax 0.0, 0.1 and 1.0; holes stay holes). A member `./` (or the
    /// archive's top directory) gives `dest` its metadata. File contents are
    /// spooled to an unlinked temporary file in [`std::env::temp_dir`] (so
    /// the archive is never held in memory) and copied into the image by
    /// [`FsBuilder::write`]. A later member replaces an earlier one of the
    /// same path, as when extracting. A corrupt archive is
    /// [`Error::BadTar`], naming the member and the byte offset.
    pub fn add_tar(&mut self, archive: impl std::io::Read, dest: &str) -> Result<(), Error> {
        tar::add(
            &mut self.tree,
            archive,
            dest,
            self.opts.times,
            self.opts.block_size.bytes(),
        )
    }

    /// Adds one entry at an absolute image path; missing parents are created 0755
    /// root:root. An existing file is replaced; an existing directory gets new metadata.
    ///
    /// The times of `meta` go through [`Options::times`].
    pub fn add(&mut self, path: &str, kind: EntryKind, mut meta: Metadata) -> Result<(), Error> {
        self.opts.times.apply_meta(&mut meta);
        self.tree.add(path, kind, meta).map(|_| ())
    }

    /// The entry at absolute image path `path` as added so far (a symbolic
    /// link anywhere on the way is not followed: its target is for the caller
    /// to resolve), or `None` if there is none or the path is not absolute.
    pub fn entry(&self, path: &str) -> Option<Entry> {
        let id = self.tree.lookup(path).ok()??;
        let node = &self.tree.nodes[id];
        let kind = match &node.kind {
            tree::NodeKind::File { .. } => EntryType::File,
            tree::NodeKind::Dir { .. } => EntryType::Dir,
            tree::NodeKind::Symlink(t) => EntryType::Symlink(t.clone()),
            _ => EntryType::Special,
        };
        Some(Entry {
            kind,
            mode: node.meta.mode,
        })
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

    /// The metadata `add_tree` gave `/f` of `host` under this policy.
    fn added(host: &Path, times: TimePolicy) -> Metadata {
        let mut b = FsBuilder::new(Options {
            times,
            ..Options::default()
        });
        b.add_tree(host, "/").unwrap();
        let id = b.tree.lookup("/f").unwrap().expect("/f added");
        b.tree.nodes[id].meta.clone()
    }

    fn ts(sec: i64, nsec: i64) -> Timestamp {
        Timestamp {
            sec,
            nsec: nsec as u32,
        }
    }

    #[test]
    fn build_time_is_the_policys_whatever_the_environment() {
        // Read only: whatever SOURCE_DATE_EPOCH this process was started with
        // (tests/source_date_epoch.rs runs a child with it set).
        let env = std::env::var("SOURCE_DATE_EPOCH");
        let before = Timestamp::now();
        let b = FsBuilder::new(Options::default());
        assert!(b.build_time() >= before, "{env:?}");
        assert!(b.build_time() <= Timestamp::now(), "{env:?}");
        for p in [
            TimePolicy::Clamp(1_234_567_890),
            TimePolicy::Force(1_234_567_890),
        ] {
            let b = FsBuilder::new(Options {
                times: p,
                ..Options::default()
            });
            assert_eq!(b.build_time(), Timestamp::from_secs(1_234_567_890));
        }
    }

    #[test]
    fn add_tree_keeps_clamps_or_forces_the_source_times() {
        let host = host_dir("times");
        let m = std::fs::symlink_metadata(host.join("f")).unwrap();
        let (a, mt, c) = (
            ts(m.atime(), m.atime_nsec()),
            ts(m.mtime(), m.mtime_nsec()),
            ts(m.ctime(), m.ctime_nsec()),
        );
        assert!(mt.sec > 1000, "host clock before 1970+1000s: {mt:?}");
        let kept = added(&host, TimePolicy::Keep);
        let clamped = added(&host, TimePolicy::Clamp(1000));
        let forced = added(&host, TimePolicy::Force(5));
        let late = added(&host, TimePolicy::Clamp(i64::from(u32::MAX)));
        std::fs::remove_dir_all(&host).unwrap();
        assert_eq!(
            (kept.atime, kept.mtime, kept.ctime, kept.crtime),
            (a, mt, c, mt)
        );
        let t = Timestamp::from_secs(1000);
        assert_eq!(
            (clamped.atime, clamped.mtime, clamped.ctime, clamped.crtime),
            (t, t, t, t)
        );
        let t = Timestamp::from_secs(5);
        assert_eq!(
            (forced.atime, forced.mtime, forced.ctime, forced.crtime),
            (t, t, t, t)
        );
        assert_eq!((late.atime, late.mtime, late.ctime), (a, mt, c));
    }
}

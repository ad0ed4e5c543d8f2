//! Writes a [`Plan`] as an ext4 image with `ext4fs-builder`, on top of the
//! recipe's base tarball if it has one.

use std::path::{Path, PathBuf};

use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, TimePolicy, Timestamp, TreeOverrides,
};

use super::{Node, Plan};

/// Why the filesystem could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The base tarball could not be read (the message names the file, and
    /// for a corrupt archive the member and byte offset).
    #[error("{0}")]
    Base(String),
    /// Adding the plan's entries failed.
    #[error(transparent)]
    Fs(#[from] Error),
}

/// A filesystem builder holding the base tarball's members (if any), then
/// every entry of `plan` in write order, on top: where they meet, the plan's
/// entries win. Every time is `epoch` ([`TimePolicy::Force`]), the base's
/// included. Check it ([`FsBuilder::check`]) or write it.
pub fn builder(
    plan: &Plan,
    base: Option<&Path>,
    mut opts: Options,
    epoch: i64,
) -> Result<FsBuilder, FsError> {
    opts.times = TimePolicy::Force(epoch);
    let mut fs = FsBuilder::new(opts);
    if let Some(base) = base {
        let (archive, _) = crate::tarball::open(base).map_err(|e| FsError::Base(e.to_string()))?;
        fs.add_tar(archive, "/")
            .map_err(|e| FsError::Base(format!("{}: {e}", base.display())))?;
    }
    add_plan(&mut fs, plan, epoch)?;
    Ok(fs)
}

/// Adds every entry of `plan`, in write order.
fn add_plan(fs: &mut FsBuilder, plan: &Plan, epoch: i64) -> Result<(), Error> {
    let ts = Timestamp::from_secs(epoch);
    for (path, e) in plan.write_order() {
        let mut meta = Metadata::new(e.mode, ts);
        meta.uid = e.uid;
        meta.gid = e.gid;
        let kind = match &e.node {
            Node::Dir => EntryKind::Dir,
            Node::Bytes(b) => EntryKind::File(FileData::Bytes(b.clone())),
            Node::HostFile(p) => EntryKind::File(FileData::Path(p.clone())),
            Node::HostTree {
                src,
                file_mode,
                dir_mode,
            } => {
                // The tree's contents (merged into a directory already
                // there), then this entry's own metadata on top.
                let o = TreeOverrides {
                    file_mode: *file_mode,
                    dir_mode: *dir_mode,
                    owner: Some((e.uid, e.gid)),
                };
                fs.add_tree_with(src, path, o)?;
                fs.add(path, EntryKind::Dir, meta)?;
                continue;
            }
            Node::Symlink(t) => EntryKind::Symlink(PathBuf::from(t)),
            Node::CharDev(major, minor) => EntryKind::CharDev {
                major: *major,
                minor: *minor,
            },
            Node::BlockDev(major, minor) => EntryKind::BlockDev {
                major: *major,
                minor: *minor,
            },
            Node::Fifo => EntryKind::Fifo,
        };
        fs.add(path, kind, meta)?;
    }
    Ok(())
}

//! Writes a [`Plan`] as an ext4 image with `ext4fs-builder`.

use std::path::{Path, PathBuf};

use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, Timestamp, TreeOverrides, WriteReport,
};

use super::{Node, Plan};

/// Decides the image of `plan` (geometry, size) without writing it.
pub fn check(plan: &Plan, opts: Options, epoch: i64) -> Result<ext4fs_builder::Fit, Error> {
    builder(plan, opts, epoch)?.check()
}

/// Adds every entry of `plan` to a new filesystem and writes it to `image`
/// (via a temp file renamed into place by the writer). All timestamps are
/// `epoch`. `progress` hears how much of the contents is written.
pub fn write(
    plan: &Plan,
    opts: Options,
    epoch: i64,
    image: &Path,
    progress: &mut dyn FnMut(ext4fs_builder::Progress),
) -> Result<WriteReport, Error> {
    builder(plan, opts, epoch)?.write_with_progress(image, progress)
}

/// A filesystem builder holding every entry of `plan`, in write order.
fn builder(plan: &Plan, mut opts: Options, epoch: i64) -> Result<FsBuilder, Error> {
    opts.timestamp = Some(epoch);
    let ts = Timestamp::from_secs(epoch);
    let mut fs = FsBuilder::new(opts);
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
    Ok(fs)
}

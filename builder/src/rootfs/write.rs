//! Writes a [`Plan`] as an ext4 image with `ext4fs-builder`.

use std::path::{Path, PathBuf};

use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, Timestamp, WriteReport,
};

use super::{Node, Plan};

/// Adds every entry of `plan` to a new filesystem and writes it to `image`
/// (via a temp file renamed into place by the writer). All timestamps are
/// `epoch`. `progress` hears how much of the contents is written.
pub fn write(
    plan: &Plan,
    mut opts: Options,
    epoch: i64,
    image: &Path,
    progress: &mut dyn FnMut(ext4fs_builder::Progress),
) -> Result<WriteReport, Error> {
    opts.timestamp = Some(epoch);
    let ts = Timestamp::from_secs(epoch);
    let mut fs = FsBuilder::new(opts);
    for (path, e) in plan.iter() {
        let mut meta = Metadata::new(e.mode, ts);
        meta.uid = e.uid;
        meta.gid = e.gid;
        let kind = match &e.node {
            Node::Dir => EntryKind::Dir,
            Node::Bytes(b) => EntryKind::File(FileData::Bytes(b.clone())),
            Node::HostFile(p) => EntryKind::File(FileData::Path(p.clone())),
            Node::HostTree(p) => {
                // The tree's contents, then this entry's own metadata on top.
                fs.add_tree(p, path)?;
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
    fs.write_with_progress(image, progress)
}

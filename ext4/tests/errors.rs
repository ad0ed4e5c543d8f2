//! Bad input gives a clear error naming the path, and leaves nothing at the target.
mod common;

use std::path::Path;

use common::Scratch;
use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, SizeSpec, TimePolicy, Timestamp,
};

fn opts() -> Options {
    Options {
        times: TimePolicy::Clamp(1),
        seed: Some(1),
        ..Options::default()
    }
}

fn meta() -> Metadata {
    Metadata::new(0o644, Timestamp::from_secs(1))
}

fn no_leftovers(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.iter().all(|n| n == "src"), "left behind: {left:?}");
}

#[test]
fn unreadable_source_file() {
    let d = Scratch::new("unread");
    let mut b = FsBuilder::new(opts());
    let missing = d.path("src/nope");
    b.add(
        "/f",
        EntryKind::File(FileData::Path(missing.clone())),
        meta(),
    )
    .unwrap();
    let err = b.write(&d.path("img")).unwrap_err();
    assert!(
        matches!(err, Error::SourceRead { ref path, .. } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("src/nope"), "{err}");
    no_leftovers(&d.0);
}

#[test]
fn unreadable_source_dir() {
    let d = Scratch::new("unreaddir");
    let mut b = FsBuilder::new(opts());
    let err = b.add_tree(&d.path("missing-dir"), "/").unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn name_too_long() {
    let mut b = FsBuilder::new(opts());
    let name = "n".repeat(256);
    let err = b
        .add(&format!("/d/{name}"), EntryKind::Fifo, meta())
        .unwrap_err();
    assert!(matches!(err, Error::NameTooLong { len: 256, .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    // 255 is fine.
    b.add(&format!("/d/{}", "n".repeat(255)), EntryKind::Fifo, meta())
        .unwrap();
}

#[test]
fn name_too_long_in_host_tree() {
    let d = Scratch::new("longhost");
    let src = d.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Linux allows at most 255 bytes per name too, so build the tree in memory instead:
    // the host limit equals ours. Check the in-memory path for a symlink target instead.
    let mut b = FsBuilder::new(opts());
    b.add_tree(&src, "/").unwrap();
    let err = b
        .add(&format!("/{}", "é".repeat(128)), EntryKind::Fifo, meta())
        .unwrap_err();
    assert!(matches!(err, Error::NameTooLong { len: 256, .. }), "{err}");
}

#[test]
fn source_changes_while_read() {
    let d = Scratch::new("changes");
    let src = d.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("grow"), vec![1u8; 10_000]).unwrap();
    let mut b = FsBuilder::new(opts());
    b.add_tree(&src, "/").unwrap();
    // Changes after planning (add_tree recorded the size) and before writing.
    std::fs::write(src.join("grow"), vec![1u8; 20_000]).unwrap();
    let img = d.path("img");
    let err = b.write(&img).unwrap_err();
    assert!(
        matches!(err, Error::SourceChanged { expected: 10_000, actual: 20_000, ref path } if path.ends_with("grow")),
        "{err}"
    );
    assert!(!img.exists());
    no_leftovers(&d.0);
}

#[test]
fn source_shrinks_while_read() {
    let d = Scratch::new("shrinks");
    let src = d.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), vec![1u8; 10_000]).unwrap();
    let mut b = FsBuilder::new(opts());
    b.add_tree(&src, "/").unwrap();
    std::fs::write(src.join("f"), vec![1u8; 100]).unwrap();
    let err = b.write(&d.path("img")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SourceChanged {
                expected: 10_000,
                ..
            }
        ),
        "{err}"
    );
    no_leftovers(&d.0);
}

#[test]
fn too_many_inodes() {
    let d = Scratch::new("inodes");
    let mut b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(1 << 20),
        block_size: ext4fs_builder::BlockSize::B1024,
        ..opts()
    });
    // 9000 inodes' tables alone (2.25 MiB) are bigger than the filesystem.
    for i in 0..9000 {
        b.add(&format!("/f{i}"), EntryKind::Fifo, meta()).unwrap();
    }
    let err = b.write(&d.path("img")).unwrap_err();
    let Error::TooManyInodes { needed, max, .. } = err else {
        panic!("{err}")
    };
    assert!(needed > 9000 && max < needed, "{err}");
    no_leftovers(&d.0);
    // It holds that many, and no more, however many are asked for.
    let with = |n: u64| {
        FsBuilder::new(Options {
            size: SizeSpec::Fixed(1 << 20),
            block_size: ext4fs_builder::BlockSize::B1024,
            inodes: ext4fs_builder::InodeSpec::Count(n),
            ..opts()
        })
        .write(&d.path("img"))
    };
    assert_eq!(with(max).unwrap().inodes_count, max);
    common::e2fsck(&d.path("img"));
    for n in max + 1..max + 20 {
        if let Ok(r) = with(n) {
            assert!(r.inodes_count <= max, "{n} asked, {} made", r.inodes_count);
        }
    }
}

#[test]
fn does_not_fit_names_size_needed() {
    let d = Scratch::new("fit");
    let mut b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(8 << 20),
        ..opts()
    });
    b.add(
        "/big",
        EntryKind::File(FileData::Bytes(vec![7; 12 << 20])),
        meta(),
    )
    .unwrap();
    let img = d.path("img");
    let err = b.write(&img).unwrap_err();
    let Error::TooSmall {
        needed_bytes,
        size_bytes,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(size_bytes, 8 << 20);
    assert!(needed_bytes > 12 << 20, "{needed_bytes}");
    no_leftovers(&d.0);
    // And the size named really is enough.
    let mut b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(needed_bytes),
        ..opts()
    });
    b.add(
        "/big",
        EntryKind::File(FileData::Bytes(vec![7; 12 << 20])),
        meta(),
    )
    .unwrap();
    b.write(&img).unwrap();
    common::e2fsck(&img);
}

#[test]
fn image_in_missing_directory() {
    let d = Scratch::new("missing");
    let img = d.path("no/such/dir/img");
    let err = FsBuilder::new(opts()).write(&img).unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    assert!(!d.path("no").exists());
}

#[test]
fn failed_build_keeps_existing_target() {
    let d = Scratch::new("keep");
    let img = d.path("img");
    std::fs::write(&img, b"old").unwrap();
    let mut b = FsBuilder::new(opts());
    b.add(
        "/f",
        EntryKind::File(FileData::Path(d.path("missing"))),
        meta(),
    )
    .unwrap();
    assert!(b.write(&img).is_err());
    assert_eq!(std::fs::read(&img).unwrap(), b"old");
    let names: Vec<_> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn bad_paths_and_links() {
    let mut b = FsBuilder::new(opts());
    assert!(matches!(
        b.add("rel", EntryKind::Fifo, meta()),
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        b.add("/a/../b", EntryKind::Fifo, meta()),
        Err(Error::InvalidPath { .. })
    ));
    let e = b
        .add("/l", EntryKind::HardLink("/nope".into()), meta())
        .unwrap_err();
    assert!(e.to_string().contains("/nope"), "{e}");
    let e = b
        .add("/l", EntryKind::HardLink("/lost+found".into()), meta())
        .unwrap_err();
    assert!(matches!(e, Error::BadHardLink { .. }), "{e}");
    let mut m = meta();
    m.xattrs.push(("bogus.name".into(), vec![]));
    assert!(matches!(
        b.add("/x", EntryKind::Fifo, m),
        Err(Error::BadXattr { .. })
    ));
}

/// Writes an image of `size` bytes holding `/big` of `len` bytes.
fn build_big(
    d: &Scratch,
    bs: ext4fs_builder::BlockSize,
    size: u64,
    len: usize,
) -> Result<ext4fs_builder::WriteReport, Error> {
    let mut b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(size),
        block_size: bs,
        ..opts()
    });
    b.add(
        "/big",
        EntryKind::File(FileData::Bytes(vec![7; len])),
        meta(),
    )?;
    b.write(&d.path("img"))
}

#[test]
fn too_small_names_the_true_minimum() {
    use ext4fs_builder::BlockSize::{B1024, B4096};
    let d = Scratch::new("minimum");
    for (bs, len, asked, journal_note) in [
        // Fits only without a journal (under 2048 blocks, as mke2fs).
        (B4096, 3 << 20, 2 << 20, true),
        (B4096, 12 << 20, 8 << 20, false),
        (B1024, 5 << 20, 1 << 20, false),
        (B1024, 1 << 20, 1 << 20, true),
    ] {
        let err = build_big(&d, bs, asked, len).unwrap_err();
        let msg = err.to_string();
        let Error::TooSmall { needed_bytes, .. } = err else {
            panic!("{err}")
        };
        let block = u64::from(bs.bytes());
        assert_eq!(needed_bytes % block, 0, "{msg}");
        assert!(needed_bytes > asked, "{msg}");
        assert_eq!(msg.contains("no journal"), journal_note, "{msg}");
        // The size named builds; one block less does not.
        build_big(&d, bs, needed_bytes, len)
            .unwrap_or_else(|e| panic!("{bs:?}, {len} bytes at the size named: {e}"));
        common::e2fsck(&d.path("img"));
        let less = build_big(&d, bs, needed_bytes - block, len).map(|r| r.size_bytes);
        assert!(
            matches!(less, Err(Error::TooSmall { needed_bytes: n, .. }) if n == needed_bytes),
            "{bs:?}, {len} bytes: {} bytes named, one block less gives {less:?}",
            needed_bytes
        );
    }
}

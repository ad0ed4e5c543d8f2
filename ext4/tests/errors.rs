//! Bad input gives a clear error naming the path, and leaves nothing at the target.
mod common;

use std::path::Path;

use common::Scratch;
use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, SizeSpec, Timestamp,
};

fn opts() -> Options {
    Options {
        timestamp: Some(1),
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
    // One 1 KiB-block group holds at most 8192 inodes (one bitmap block).
    for i in 0..9000 {
        b.add(&format!("/f{i}"), EntryKind::Fifo, meta()).unwrap();
    }
    let err = b.write(&d.path("img")).unwrap_err();
    assert!(
        matches!(err, Error::TooManyInodes { needed, max: 8192, .. } if needed > 9000),
        "{err}"
    );
    no_leftovers(&d.0);
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

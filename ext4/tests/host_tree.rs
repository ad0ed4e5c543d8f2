//! Real host trees: a generated tree with every file type read back entry by entry, and
//! (with IMGBUILD_BIG_TESTS=1, as CI sets) this machine's /usr/share.
mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Expect, Scratch};
use ext4fs_builder::{
    EntryKind, FileData, FsBuilder, Metadata, Options, OwnerPolicy, TimePolicy, Timestamp,
};

/// What the image must hold for a host tree, as `add_tree` promises: names, types,
/// permissions, owners (kept), contents, link targets, device numbers; the source's
/// atime, mtime and ctime, crtime = mtime, each clamped to the build time.
fn expect_from_host(root: &Path, clamp: i64) -> BTreeMap<String, Expect> {
    let mut ex = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), "/".to_owned())];
    while let Some((host, image)) = stack.pop() {
        let m = std::fs::symlink_metadata(&host).unwrap();
        let t = |sec, nsec: i64| Timestamp {
            sec,
            nsec: nsec as u32,
        };
        let mut meta = Metadata::new((m.mode() & 0o7777) as u16, t(m.mtime(), m.mtime_nsec()));
        meta.atime = t(m.atime(), m.atime_nsec());
        meta.ctime = t(m.ctime(), m.ctime_nsec());
        TimePolicy::Clamp(clamp).apply_meta(&mut meta);
        meta.uid = m.uid();
        meta.gid = m.gid();
        let ft = m.file_type();
        let key = (m.dev(), m.ino());
        let kind = if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&host)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                let child = if image == "/" {
                    format!("/{}", n.to_str().unwrap())
                } else {
                    format!("{image}/{}", n.to_str().unwrap())
                };
                stack.push((host.join(&n), child));
            }
            EntryKind::Dir
        } else if let Some(first) = inodes.get(&key).filter(|_| m.nlink() > 1) {
            EntryKind::HardLink(first.clone())
        } else if ft.is_file() {
            EntryKind::File(FileData::Path(host.clone()))
        } else if ft.is_symlink() {
            EntryKind::Symlink(std::fs::read_link(&host).unwrap())
        } else {
            use std::os::unix::fs::FileTypeExt;
            let (major, minor) = (rustix_major(m.rdev()), rustix_minor(m.rdev()));
            if ft.is_char_device() {
                EntryKind::CharDev { major, minor }
            } else if ft.is_block_device() {
                EntryKind::BlockDev { major, minor }
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else {
                EntryKind::Socket
            }
        };
        if !ft.is_dir() && m.nlink() > 1 {
            inodes.entry(key).or_insert_with(|| image.clone());
        }
        ex.insert(image, Expect { kind, meta });
    }
    ex
}

fn rustix_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xFFFF_F000) | ((dev >> 8) & 0xFFF)) as u32
}

fn rustix_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xFFFF_FF00) | (dev & 0xFF)) as u32
}

fn build_and_check(
    src: &Path,
    img: &Path,
    full_debugfs: bool,
    patch: impl FnOnce(&mut BTreeMap<String, Expect>),
) {
    let clamp = 1_750_000_000;
    let mut b = FsBuilder::new(Options {
        owner: OwnerPolicy::Keep,
        times: TimePolicy::Clamp(clamp),
        ..Options::default()
    });
    // What the source says before the build reads it: reading a file
    // updates its atime (relatime: once a day, or when older than mtime),
    // and the image keeps the atime the builder saw.
    let mut ex = expect_from_host(src, clamp);
    b.add_tree(src, "/").unwrap();
    b.write(img).unwrap();
    if !ex.contains_key("/lost+found") {
        let lf = Metadata::new(0o700, Timestamp::from_secs(clamp));
        ex.insert(
            "/lost+found".into(),
            Expect {
                kind: EntryKind::Dir,
                meta: lf,
            },
        );
    }
    patch(&mut ex);
    common::e2fsck(img);
    common::verify_ext4_view(img, &ex);
    if full_debugfs {
        common::verify_debugfs(img, &ex);
    }
}

#[test]
fn generated_host_tree_reads_back() {
    let d = Scratch::new("host");
    let src = d.path("src");
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::write(src.join("a/file"), b"data").unwrap();
    std::fs::write(src.join("a/b/c/deep"), vec![9u8; 70_000]).unwrap();
    std::fs::hard_link(src.join("a/file"), src.join("a/b/hard")).unwrap();
    std::os::unix::fs::symlink("../file", src.join("a/b/sym")).unwrap();
    std::os::unix::fs::symlink("y".repeat(100), src.join("a/longsym")).unwrap();
    let fifo = src.join("a/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fifo.as_os_str().as_bytes(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let dev = src.join("a/null");
    let _ = rustix::fs::mknodat(
        rustix::fs::CWD,
        dev.as_os_str().as_bytes(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    );
    std::fs::set_permissions(
        src.join("a/file"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4711),
    )
    .unwrap();
    let _ = rustix::fs::chown(
        src.join("a/b/c/deep").as_path(),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(4321)),
    );
    // Host xattrs are copied (user.* works on the usual tmp filesystems).
    let xattr_ok = rustix::fs::setxattr(
        src.join("a/b/c/deep").as_path(),
        "user.origin",
        b"host",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    build_and_check(&src, &d.path("img"), true, |ex| {
        if xattr_ok {
            ex.get_mut("/a/b/c/deep").unwrap().meta.xattrs =
                vec![("user.origin".into(), b"host".to_vec())];
        }
    });
    // Default ownership is root:root whatever the source says.
    let img = d.path("img-root");
    let mut b = FsBuilder::new(Options {
        times: TimePolicy::Clamp(1_750_000_000),
        ..Options::default()
    });
    b.add_tree(&src, "/").unwrap();
    b.write(&img).unwrap();
    common::e2fsck(&img);
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    let m = fs.metadata("/a/b/c/deep").unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(m.mode(), 0o644);
}

/// Gated: the whole of /usr/share (tens of thousands of files).
#[test]
fn usr_share() {
    if std::env::var("IMGBUILD_BIG_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set IMGBUILD_BIG_TESTS=1 to build /usr/share");
        return;
    }
    let d = Scratch::new("usrshare");
    build_and_check(Path::new("/usr/share"), &d.path("img"), false, |_| {});
}

/// Host names that are not UTF-8 are kept byte for byte.
#[test]
fn non_utf8_host_names() {
    use std::ffi::OsStr;
    let d = Scratch::new("bytes");
    let src = d.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9-\xff");
    std::fs::write(src.join(name), b"latin1").unwrap();
    let img = d.path("img");
    let mut b = FsBuilder::new(Options {
        times: TimePolicy::Clamp(1),
        ..Options::default()
    });
    b.add_tree(&src, "/").unwrap();
    b.write(&img).unwrap();
    common::e2fsck(&img);
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    let names: Vec<Vec<u8>> = fs
        .read_dir("/")
        .unwrap()
        .map(|e| e.unwrap().file_name().as_ref().to_vec())
        .collect();
    assert!(names.contains(&b"caf\xe9-\xff".to_vec()), "{names:?}");
    let mut p = b"/".to_vec();
    p.extend_from_slice(b"caf\xe9-\xff");
    assert_eq!(fs.read(ext4_view::Path::new(&p)).unwrap(), b"latin1");
}

/// `add_tree_with` sets the modes and owner it is given, for every entry of
/// its kind, and keeps the source's where it is given none.
#[test]
fn tree_overrides() {
    use std::os::unix::fs::PermissionsExt;
    let d = Scratch::new("overrides");
    let src = d.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::write(src.join("sub/data"), b"x").unwrap();
    std::os::unix::fs::symlink("run.sh", src.join("link")).unwrap();
    for (p, mode) in [
        ("", 0o750),
        ("sub", 0o700),
        ("run.sh", 0o755),
        ("sub/data", 0o600),
    ] {
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let build = |o: ext4fs_builder::TreeOverrides| {
        let img = d.path(&format!("img-{:?}-{:?}", o.file_mode, o.dir_mode));
        let mut b = FsBuilder::new(Options {
            times: TimePolicy::Clamp(1),
            ..Options::default()
        });
        b.add_tree_with(&src, "/srv/www", o).unwrap();
        b.write(&img).unwrap();
        common::e2fsck(&img);
        let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
        let mode = |p: &str| {
            let m = fs.symlink_metadata(ext4_view::Path::new(p)).unwrap();
            (m.mode() & 0o7777, m.uid(), m.gid())
        };
        [
            mode("/srv/www"),
            mode("/srv/www/sub"),
            mode("/srv/www/run.sh"),
            mode("/srv/www/sub/data"),
            mode("/srv/www/link"),
        ]
    };
    // Nothing given: the source's modes, root-owned (the default policy).
    assert_eq!(
        build(Default::default()),
        [
            (0o750, 0, 0),
            (0o700, 0, 0),
            (0o755, 0, 0),
            (0o600, 0, 0),
            (0o777, 0, 0)
        ]
    );
    // Files and directories set separately; symlinks keep 0777; one owner for all.
    assert_eq!(
        build(ext4fs_builder::TreeOverrides {
            file_mode: Some(0o644),
            dir_mode: Some(0o755),
            owner: Some((33, 33)),
        }),
        [
            (0o755, 33, 33),
            (0o755, 33, 33),
            (0o644, 33, 33),
            (0o644, 33, 33),
            (0o777, 33, 33)
        ]
    );
}

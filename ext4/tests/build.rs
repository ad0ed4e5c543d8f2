//! Images with every entry type, read back with e2fsck, ext4-view and debugfs.
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Expect, Scratch, verify};
use ext4fs_builder::{
    BlockSize, EntryKind, FileData, FsBuilder, Metadata, Options, SizeSpec, TimePolicy, Timestamp,
};

const TS: i64 = 1_700_000_000;

fn opts(bs: BlockSize) -> Options {
    Options {
        block_size: bs,
        times: TimePolicy::Clamp(TS),
        seed: Some(7),
        ..Options::default()
    }
}

fn base_expect() -> BTreeMap<String, Expect> {
    let ts = Timestamp::from_secs(TS);
    let mut m = BTreeMap::new();
    m.insert(
        "/".into(),
        Expect {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o755, ts),
        },
    );
    m.insert(
        "/lost+found".into(),
        Expect {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o700, ts),
        },
    );
    m
}

fn add(
    b: &mut FsBuilder,
    ex: &mut BTreeMap<String, Expect>,
    path: &str,
    kind: EntryKind,
    meta: Metadata,
) {
    b.add(path, kind.clone(), meta.clone()).unwrap();
    ex.insert(path.to_owned(), Expect { kind, meta });
}

fn t(sec: i64, nsec: u32) -> Timestamp {
    Timestamp { sec, nsec }
}

/// Every file type, permission bits, owners, nanosecond times, xattrs in the inode and
/// in a block, hard links, fast and slow symlinks, old and new device numbers.
fn every_kind(bs: BlockSize, journal: bool) {
    let dir = Scratch::new("kinds");
    let mut o = opts(bs);
    o.journal = journal;
    let mut b = FsBuilder::new(o);
    let mut ex = base_expect();
    let meta = |mode: u16, uid: u32| {
        let mut m = Metadata::new(mode, t(1_600_000_000, 123_456_789));
        m.uid = uid;
        m.gid = uid + 1;
        m.atime = t(1_650_000_000, 1);
        m.ctime = t(1_610_000_000, 999_999_999);
        m.crtime = t(1_500_000_000, 5);
        m
    };
    add(&mut b, &mut ex, "/etc", EntryKind::Dir, meta(0o755, 0));
    add(
        &mut b,
        &mut ex,
        "/etc/empty",
        EntryKind::File(FileData::Bytes(vec![])),
        meta(0o644, 1000),
    );
    add(
        &mut b,
        &mut ex,
        "/etc/hello",
        EntryKind::File(FileData::Bytes(b"hello\n".to_vec())),
        meta(0o4755, 70000),
    );
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    add(
        &mut b,
        &mut ex,
        "/etc/big",
        EntryKind::File(FileData::Bytes(big)),
        meta(0o2644, 5),
    );
    add(&mut b, &mut ex, "/tmp", EntryKind::Dir, meta(0o1777, 0));
    add(
        &mut b,
        &mut ex,
        "/tmp/fast",
        EntryKind::Symlink(PathBuf::from("../etc/hello")),
        meta(0o777, 0),
    );
    let long = format!("/{}", "x".repeat(200));
    add(
        &mut b,
        &mut ex,
        "/tmp/slow",
        EntryKind::Symlink(PathBuf::from(&long)),
        meta(0o777, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/dev/null",
        EntryKind::CharDev { major: 1, minor: 3 },
        meta(0o666, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/dev/sda1",
        EntryKind::BlockDev { major: 8, minor: 1 },
        meta(0o660, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/dev/nvme",
        EntryKind::BlockDev {
            major: 259,
            minor: 70000,
        },
        meta(0o660, 6),
    );
    add(
        &mut b,
        &mut ex,
        "/dev/big",
        EntryKind::CharDev {
            major: 4000,
            minor: 300,
        },
        meta(0o600, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/run/fifo",
        EntryKind::Fifo,
        meta(0o644, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/run/sock",
        EntryKind::Socket,
        meta(0o755, 0),
    );
    let mut xm = meta(0o755, 0);
    xm.xattrs = vec![
        (
            "security.capability".into(),
            vec![
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        ("user.small".into(), b"v".to_vec()),
        ("user.large".into(), vec![0xAB; 700]),
        ("trusted.t".into(), vec![]),
    ];
    add(
        &mut b,
        &mut ex,
        "/bin/ping",
        EntryKind::File(FileData::Bytes(b"ELF".to_vec())),
        xm,
    );
    let mut xd = meta(0o700, 0);
    xd.xattrs = vec![("user.dir".into(), b"on a directory".to_vec())];
    add(&mut b, &mut ex, "/xdir", EntryKind::Dir, xd);
    add(
        &mut b,
        &mut ex,
        "/bin/ping6",
        EntryKind::HardLink("/bin/ping".into()),
        meta(0, 0),
    );
    add(
        &mut b,
        &mut ex,
        "/etc/hello2",
        EntryKind::HardLink("/etc/hello".into()),
        meta(0, 0),
    );
    // Implicit parents: 0755 root:root at the build time.
    for p in ["/dev", "/run", "/bin"] {
        ex.insert(
            p.into(),
            Expect {
                kind: EntryKind::Dir,
                meta: Metadata::new(0o755, Timestamp::from_secs(TS)),
            },
        );
    }
    // A big directory spanning many blocks.
    add(&mut b, &mut ex, "/many", EntryKind::Dir, meta(0o755, 0));
    for i in 0..3000 {
        let p = format!("/many/entry-with-a-longish-name-{i:05}");
        add(
            &mut b,
            &mut ex,
            &p,
            EntryKind::File(FileData::Bytes(vec![i as u8; i % 5])),
            meta(0o644, 0),
        );
    }
    let img = dir.path("img");
    let r = b.write(&img).unwrap();
    assert_eq!(r.block_size, bs.bytes());
    assert_eq!(r.journal_blocks > 0, journal);
    verify(&img, &ex);
}

#[test]
fn every_kind_4k() {
    every_kind(BlockSize::B4096, true);
}

#[test]
fn every_kind_2k_no_journal() {
    every_kind(BlockSize::B2048, false);
}

#[test]
fn every_kind_1k() {
    every_kind(BlockSize::B1024, true);
}

/// A holey file from the host whose data is scattered so its extent tree needs index
/// blocks two levels deep (1 KiB blocks: 84 extents per leaf), a big file crossing
/// several block groups, and holes staying holes.
#[test]
fn host_files_holes_and_deep_extent_trees() {
    use std::os::unix::fs::FileExt;
    let dir = Scratch::new("holes");
    let src = dir.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let holey = src.join("holey");
    let f = std::fs::File::create(&holey).unwrap();
    for i in 0..400u64 {
        f.write_all_at(&[(i % 250) as u8 + 1; 1024], i * 8192)
            .unwrap();
    }
    f.set_len(400 * 8192 + 5000).unwrap();
    let big = src.join("big");
    let data: Vec<u8> = (0..30u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    std::fs::write(src.join("zero"), b"").unwrap();
    let mut b = FsBuilder::new(opts(BlockSize::B1024));
    b.add_tree(&src, "/").unwrap();
    let img = dir.path("img");
    b.write(&img).unwrap();
    common::e2fsck(&img);
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    assert!(fs.read("/holey").unwrap() == std::fs::read(&holey).unwrap());
    assert!(fs.read("/big").unwrap() == data);
    let out = common::debugfs(&img, &["stat /holey".into(), "stat /big".into()]);
    // Holes stay holes: at most the host's 4 KiB data pages (1600 KiB) plus tree
    // blocks are allocated, not the 3200 KiB of the file's length.
    let blocks: u64 = out[0]
        .split("Blockcount: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        blocks <= 2 * (1600 + 10),
        "holey file allocated {blocks} sectors"
    );
    assert!(
        out[0].contains("Level Entries") || out[0].contains("(ETB1)"),
        "{}",
        out[0]
    );
    assert!(
        out[0].contains("ETB1"),
        "two-level tree expected: {}",
        out[0]
    );
    // 30 MiB crosses several 8 MiB groups.
    assert!(out[1].matches("-").count() > 3, "{}", out[1]);
}

/// Fixed size: apparent size as asked, sparse on disk, and the whole tree in it.
#[test]
fn fixed_size_is_sparse() {
    use std::os::unix::fs::MetadataExt;
    let dir = Scratch::new("fixed");
    let mut o = opts(BlockSize::B4096);
    o.size = SizeSpec::parse("256M").unwrap();
    let mut b = FsBuilder::new(o);
    b.add(
        "/a",
        EntryKind::File(FileData::Bytes(vec![1; 10_000])),
        Metadata::new(0o644, t(TS, 0)),
    )
    .unwrap();
    let img = dir.path("img");
    let r = b.write(&img).unwrap();
    let m = std::fs::metadata(&img).unwrap();
    assert_eq!(m.len(), 256 << 20);
    assert_eq!(r.size_bytes, 256 << 20);
    assert!(
        m.blocks() * 512 < 4 << 20,
        "allocated {} bytes",
        m.blocks() * 512
    );
    common::e2fsck(&img);
}

/// Big directories are hashed (dir_index) like the kernel makes them: one index level
/// for thousands of entries, two for tens of thousands with 1 KiB blocks. e2fsck checks
/// hashes, limits and dx checksums; ext4-view and debugfs look names up through it.
#[test]
fn hashed_directories() {
    let dir = Scratch::new("htree");
    let mut b = FsBuilder::new(opts(BlockSize::B1024));
    let mut ex = base_expect();
    let m = Metadata::new(0o755, t(TS, 0));
    add(&mut b, &mut ex, "/one", EntryKind::Dir, m.clone());
    add(&mut b, &mut ex, "/two", EntryKind::Dir, m.clone());
    for i in 0..2000 {
        let kind = EntryKind::File(FileData::Bytes(format!("{i}\n").into_bytes()));
        add(
            &mut b,
            &mut ex,
            &format!("/one/ünïcödé-{i}"),
            kind,
            m.clone(),
        );
    }
    for i in 0..20_000 {
        add(
            &mut b,
            &mut ex,
            &format!("/two/a-rather-long-file-name-{i:06}"),
            EntryKind::Fifo,
            m.clone(),
        );
    }
    let img = dir.path("img");
    b.write(&img).unwrap();
    common::e2fsck(&img);
    common::verify_ext4_view(&img, &ex);
    let out = common::debugfs(
        &img,
        &[
            "htree /one".into(),
            "htree /two".into(),
            "cat /one/ünïcödé-1234".into(),
            "stat /two".into(),
        ],
    );
    assert!(out[0].contains("Indirect levels: 0"), "{}", out[0]);
    assert!(out[1].contains("Indirect levels: 1"), "{}", out[1]);
    assert!(
        !out[0].contains("EXPECTED") && !out[1].contains("EXPECTED"),
        "dx checksum mismatch"
    );
    assert_eq!(out[2], "1234\n");
    assert!(out[3].contains("Flags: 0x81000"), "{}", out[3]);
}

//! `resize_inode` as mke2fs makes it: the reserved GDT blocks (`dumpe2fs -h`),
//! the resize inode's blocks (`debugfs stat <7>`), and what they are for:
//! `resize2fs` grows an image 4-fold into them and shrinks it again, e2fsck
//! clean and the files intact. `Options::resize_inode = false` is
//! `mke2fs -O ^resize_inode`.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Scratch, tool};
use ext4fs_builder::{
    BlockSize, EntryKind, FileData, FsBuilder, Metadata, Options, SizeSpec, TimePolicy, Timestamp,
};

fn dumpe2fs(img: &Path) -> BTreeMap<String, String> {
    let out = Command::new(tool("dumpe2fs"))
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success(), "dumpe2fs -h {}", img.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn features(m: &BTreeMap<String, String>) -> Vec<&str> {
    m["Filesystem features"].split_whitespace().collect()
}

/// `mke2fs -t ext4 -b BS <extra>` of an empty sparse file of `size` bytes.
fn mke2fs(img: &Path, size: u64, bs: u32, extra: &[&str]) {
    std::fs::File::create(img).unwrap().set_len(size).unwrap();
    let out = Command::new(tool("mke2fs"))
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .args(["-q", "-F", "-t", "ext4", "-b", &bs.to_string()])
        .args(extra)
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn opts(bs: BlockSize, size: u64) -> Options {
    Options {
        block_size: bs,
        size: SizeSpec::Fixed(size),
        seed: Some(7),
        times: TimePolicy::Force(1_700_000_000),
        ..Options::default()
    }
}

/// Some files: small, one spanning groups, a directory of many entries.
fn files() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("/d/f{i}"), format!("file {i}\n").repeat(i * 37)))
        .map(|(p, s)| (p, s.into_bytes()))
        .collect();
    v.push((
        "/big".into(),
        (0..9u32 << 20).map(|i| (i % 251) as u8).collect(),
    ));
    v
}

fn build(img: &Path, o: Options, files: &[(String, Vec<u8>)]) {
    let mut b = FsBuilder::new(o);
    for (p, data) in files {
        let meta = Metadata::new(0o644, Timestamp::from_secs(1_700_000_000));
        b.add(p, EntryKind::File(FileData::Bytes(data.clone())), meta)
            .unwrap();
    }
    b.write(img).unwrap();
}

fn resize2fs(img: &Path, args: &[&str]) {
    let out = Command::new(tool("resize2fs"))
        .arg("-f")
        .arg(img)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "resize2fs {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn num(m: &BTreeMap<String, String>, key: &str) -> u64 {
    m.get(key)
        .unwrap_or_else(|| panic!("no {key:?} in dumpe2fs -h"))
        .parse()
        .unwrap()
}

/// (size, block size): small, medium and big filesystems, where mke2fs's
/// room to grow 1024-fold is below, at and capped by one block of addresses.
const SIZES: [(u64, BlockSize); 10] = [
    (2 << 20, BlockSize::B1024),
    (64 << 20, BlockSize::B1024),
    (1 << 30, BlockSize::B1024),
    (100 << 30, BlockSize::B1024),
    (64 << 20, BlockSize::B2048),
    (8 << 30, BlockSize::B2048),
    (16 << 20, BlockSize::B4096),
    (1 << 30, BlockSize::B4096),
    (64 << 30, BlockSize::B4096),
    (1 << 40, BlockSize::B4096),
];

#[test]
fn reserved_gdt_blocks_are_mke2fs_s() {
    let d = Scratch::new("rsv");
    for (size, bs) in SIZES {
        let theirs = d.path("mke2fs.img");
        mke2fs(&theirs, size, bs.bytes(), &[]);
        let t = dumpe2fs(&theirs);
        let ours = d.path("ours.img");
        FsBuilder::new(opts(bs, size)).write(&ours).unwrap();
        common::e2fsck(&ours);
        let o = dumpe2fs(&ours);
        assert!(
            features(&o).contains(&"resize_inode"),
            "{size} {bs:?}: {o:?}"
        );
        for key in [
            "Reserved GDT blocks",
            "Block count",
            "Inode count",
            "Blocks per group",
        ] {
            assert_eq!(o.get(key), t.get(key), "{key} of {size} bytes, {bs:?}");
        }
        eprintln!(
            "{size} bytes, {bs:?}: Reserved GDT blocks {} (mke2fs {})",
            o["Reserved GDT blocks"], t["Reserved GDT blocks"]
        );
        std::fs::remove_file(&theirs).unwrap();
        std::fs::remove_file(&ours).unwrap();
    }
}

/// `debugfs stat <7>`'s facts: type, mode, links, size, block count and
/// the block list without the double-indirect block (placed differently:
/// mke2fs allocates it after the root and lost+found).
fn resize_inode_facts(img: &Path) -> (Vec<String>, String) {
    let stat = common::debugfs(img, &["stat <7>".into()]).remove(0);
    let mut facts = Vec::new();
    for key in ["Type:", "Mode:", "Links:", "Blockcount:", "Size:", "Flags:"] {
        let i = stat
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {stat}"));
        let v = stat[i + key.len()..].split_whitespace().next().unwrap();
        facts.push(format!("{key} {v}"));
    }
    let blocks = stat
        .split("BLOCKS:")
        .nth(1)
        .unwrap_or_else(|| panic!("no BLOCKS in {stat}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let without_dind: Vec<&str> = blocks
        .split(", ")
        .filter(|b| !b.starts_with("(DIND)"))
        .collect();
    (facts, without_dind.join(", "))
}

#[test]
fn resize_inode_is_mke2fs_s() {
    let d = Scratch::new("ino7");
    for (size, bs) in [
        (64u64 << 20, BlockSize::B1024),
        (8 << 30, BlockSize::B2048),
        (1 << 30, BlockSize::B4096),
    ] {
        let theirs = d.path("mke2fs.img");
        mke2fs(&theirs, size, bs.bytes(), &[]);
        let ours = d.path("ours.img");
        FsBuilder::new(opts(bs, size)).write(&ours).unwrap();
        let (tf, tb) = resize_inode_facts(&theirs);
        let (of, ob) = resize_inode_facts(&ours);
        assert_eq!(of, tf, "{size} {bs:?}");
        assert_eq!(ob, tb, "{size} {bs:?}");
        eprintln!(
            "{size} bytes, {bs:?}: {of:?}, {} block ranges",
            ob.split(", ").count()
        );
    }
}

#[test]
fn resize2fs_grows_into_the_reserved_gdt_blocks_and_shrinks() {
    let d = Scratch::new("grow");
    let files = files();
    for (size, bs) in [
        (64u64 << 20, BlockSize::B1024),
        (256 << 20, BlockSize::B4096),
    ] {
        let img = d.path("img");
        build(&img, opts(bs, size), &files);
        common::e2fsck(&img);
        let before = dumpe2fs(&img);
        // Grow 4-fold, as an offline resize2fs of the bigger disk.
        std::fs::File::options()
            .write(true)
            .open(&img)
            .unwrap()
            .set_len(4 * size)
            .unwrap();
        resize2fs(&img, &[]);
        common::e2fsck(&img);
        common::contents_intact(&img, &files);
        let after = dumpe2fs(&img);
        assert_eq!(num(&after, "Block count"), 4 * size / u64::from(bs.bytes()));
        // The new descriptor blocks came out of the reserved ones: nothing moved.
        let per_block = u64::from(bs.bytes()) / 64;
        let desc_blocks = |m: &BTreeMap<String, String>| {
            let groups = (num(m, "Block count") - num(m, "First block"))
                .div_ceil(num(m, "Blocks per group"));
            groups.div_ceil(per_block)
        };
        assert_eq!(
            num(&after, "Reserved GDT blocks") + desc_blocks(&after),
            num(&before, "Reserved GDT blocks") + desc_blocks(&before),
            "{size} {bs:?}: before {before:?}\nafter {after:?}"
        );
        // Shrink to the smallest size, then grow to a size in between.
        resize2fs(&img, &["-M"]);
        common::e2fsck(&img);
        common::contents_intact(&img, &files);
        let min = num(&dumpe2fs(&img), "Block count");
        assert!(min < size / u64::from(bs.bytes()), "{min}");
        resize2fs(&img, &[&format!("{}K", (2 * size) >> 10)]);
        common::e2fsck(&img);
        common::contents_intact(&img, &files);
        std::fs::remove_file(&img).unwrap();
    }
}

#[test]
fn without_resize_inode_is_mke2fs_without_it() {
    let d = Scratch::new("norsv");
    for (size, bs) in [
        (64u64 << 20, BlockSize::B1024),
        (760 << 30, BlockSize::B1024),
        (1 << 30, BlockSize::B4096),
    ] {
        let theirs = d.path("mke2fs.img");
        mke2fs(&theirs, size, bs.bytes(), &["-O", "^resize_inode"]);
        let t = dumpe2fs(&theirs);
        let ours = d.path("ours.img");
        FsBuilder::new(Options {
            resize_inode: false,
            ..opts(bs, size)
        })
        .write(&ours)
        .unwrap();
        common::e2fsck(&ours);
        let o = dumpe2fs(&ours);
        assert_eq!(features(&o), features(&t), "{size} {bs:?}");
        assert!(!features(&o).contains(&"resize_inode"));
        for key in [
            "Reserved GDT blocks",
            "Block count",
            "Inode count",
            "Blocks per group",
        ] {
            assert_eq!(o.get(key), t.get(key), "{key} of {size} bytes, {bs:?}");
        }
        let (facts, _) = resize_inode_facts(&ours);
        assert_eq!(facts[2], "Links: 0", "{facts:?}");
        std::fs::remove_file(&theirs).unwrap();
        std::fs::remove_file(&ours).unwrap();
    }
}

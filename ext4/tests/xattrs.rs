//! Extended attributes: an entry whose attributes do not fit is refused naming
//! the attribute; entries with identical out-of-inode attributes share one
//! xattr block, as the kernel shares them (refcount, at most
//! `EXT4_XATTR_REFCOUNT_MAX` = 1024 users a block).
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{Scratch, debugfs, e2fsck};
use ext4fs_builder::{
    EntryKind, Error, FileData, FsBuilder, Metadata, Options, SizeSpec, Timestamp,
};

fn builder() -> FsBuilder {
    FsBuilder::new(Options {
        size: SizeSpec::Fixed(64 << 20),
        seed: Some(1),
        ..Options::default()
    })
}

fn file(xattrs: &[(&str, Vec<u8>)]) -> (EntryKind, Metadata) {
    let mut m = Metadata::new(0o644, Timestamp::from_secs(1));
    m.xattrs = xattrs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    (EntryKind::File(FileData::Bytes(b"x".to_vec())), m)
}

#[test]
fn too_big_names_the_attribute() {
    for (xattrs, culprit) in [
        (
            vec![("user.small", vec![1; 10]), ("user.huge", vec![2; 5000])],
            "user.huge",
        ),
        // Each fits a block, all three do not: the one that overflows it.
        (
            vec![
                ("user.a", vec![1; 1500]),
                ("user.b", vec![2; 1500]),
                ("user.c", vec![3; 1500]),
            ],
            "user.c",
        ),
    ] {
        let mut b = builder();
        let (k, m) = file(&xattrs);
        b.add("/big", k, m).unwrap();
        let err = b.write(&Scratch::new("xbig").path("img")).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::BadXattr { path, name, .. } if path == "/big" && name == culprit),
            "{msg}"
        );
        assert!(msg.contains(&format!("{culprit:?}")), "{msg}");
    }
}

/// `i_file_acl` of each path, by debugfs.
fn acl_blocks(img: &Path, paths: &[String]) -> Vec<u64> {
    let cmds: Vec<String> = paths.iter().map(|p| format!("stat {p}")).collect();
    debugfs(img, &cmds)
        .iter()
        .zip(paths)
        .map(|(out, p)| {
            let v = out
                .split("File ACL: ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or_else(|| panic!("{p}: {out}"));
            v.parse().unwrap()
        })
        .collect()
}

/// `(h_magic, h_refcount, h_blocks)` of the xattr block `blk`.
fn header(img: &Path, blk: u64) -> (u32, u32, u32) {
    let f = std::fs::File::open(img).unwrap();
    let mut h = [0u8; 12];
    f.read_exact_at(&mut h, blk * 4096).unwrap();
    let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
    (word(0), word(4), word(8))
}

/// Users of each xattr block, which must be its refcount.
fn users_per_block(img: &Path, paths: &[String]) -> BTreeMap<u64, u32> {
    let mut users: BTreeMap<u64, u32> = BTreeMap::new();
    for blk in acl_blocks(img, paths) {
        assert_ne!(blk, 0, "an entry without its xattr block");
        *users.entry(blk).or_default() += 1;
    }
    for (&blk, &n) in &users {
        assert_eq!(header(img, blk), (0xEA02_0000, n, 1), "block {blk}");
    }
    users
}

/// Checks with debugfs `ea_get` that each path has `xattrs`.
fn values_read_back(img: &Path, paths: &[&str], xattrs: &[(&str, Vec<u8>)]) {
    let d = Scratch::new("xget");
    let mut cmds = Vec::new();
    let mut want = Vec::new();
    for p in paths {
        for (n, v) in xattrs {
            let out = d.path(&format!("v{}", cmds.len()));
            cmds.push(format!("ea_get -f {} {p} {n}", out.display()));
            want.push((out, p, n, v));
        }
    }
    cmds.push(format!("ea_list {}", paths[0]));
    let outs = debugfs(img, &cmds);
    for (out, p, n, v) in want {
        let got = std::fs::read(&out).unwrap_or_else(|_| panic!("ea_get {n} of {p}"));
        assert!(got == *v, "{n} of {p}");
    }
    for (n, _) in xattrs {
        assert!(outs.last().unwrap().contains(n), "ea_list: {outs:?}");
    }
}

#[test]
fn identical_sets_share_a_block() {
    let d = Scratch::new("xshare");
    let set = [
        ("security.selinux", b"system_u:object_r:etc_t:s0\0".to_vec()),
        ("user.big", vec![b'a'; 300]),
        ("user.more", vec![b'b'; 200]),
    ];
    let paths: Vec<String> = (0..2000).map(|i| format!("/d/f{i}")).collect();
    let build = |xattrs: &[(&str, Vec<u8>)], img: &Path| {
        let mut b = builder();
        for p in &paths {
            let (k, m) = file(xattrs);
            b.add(p, k, m).unwrap();
        }
        b.write(img).unwrap()
    };
    let (with, without) = (d.path("with.img"), d.path("without.img"));
    let used_with = build(&set, &with).blocks_used;
    let used_without = build(&[], &without).blocks_used;
    e2fsck(&with);
    // 2,000 users: two blocks of at most 1,024, not 2,000 blocks.
    assert_eq!(used_with - used_without, 2, "blocks for the xattrs");
    let users = users_per_block(&with, &paths);
    assert_eq!(
        users.values().copied().collect::<Vec<_>>(),
        [1024, 976],
        "{users:?}"
    );
    values_read_back(&with, &["/d/f0", "/d/f1", "/d/f999", "/d/f1999"], &set);
}

#[test]
fn distinct_sets_get_distinct_blocks() {
    let d = Scratch::new("xdistinct");
    let img = d.path("img");
    let sets: Vec<Vec<(&str, Vec<u8>)>> = (0..4u8)
        .map(|k| vec![("user.big", vec![b'a' + k; 300])])
        .collect();
    let mut b = builder();
    let mut by_set: Vec<Vec<String>> = vec![Vec::new(); sets.len()];
    for i in 0..31 {
        // Set 3 has one user; the others ten each.
        let k = if i == 30 { 3 } else { i % 3 };
        let p = format!("/f{i}");
        let (kind, m) = file(&sets[k]);
        b.add(&p, kind, m).unwrap();
        by_set[k].push(p);
    }
    b.write(&img).unwrap();
    e2fsck(&img);
    let mut blocks = Vec::new();
    for (k, paths) in by_set.iter().enumerate() {
        let users = users_per_block(&img, paths);
        assert_eq!(users.len(), 1, "set {k}: {users:?}");
        let (&blk, &n) = users.iter().next().unwrap();
        assert_eq!(n as usize, paths.len(), "set {k}");
        blocks.push(blk);
        let ps: Vec<&str> = paths.iter().map(String::as_str).collect();
        values_read_back(&img, &ps, &sets[k]);
    }
    blocks.sort_unstable();
    blocks.dedup();
    assert_eq!(blocks.len(), sets.len(), "{blocks:?}");
}

//! Source paths longer than PATH_MAX (4096 bytes) are read, as `mke2fs -d`
//! reads them: the walk goes a directory descriptor at a time, and file
//! contents and xattrs are read through `openat` chains. And the walk holds
//! only one descriptor per directory level: a 50,000-file tree builds with a
//! limit of 64 open files. (One test: it lowers this process's file limit.)
mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use common::Scratch;
use ext4fs_builder::{FsBuilder, Options, TimePolicy};
use rustix::fs::{AtFlags, Mode, OFlags};

/// Makes directory `name` in `dir` and opens it.
fn mkdir_in(dir: &OwnedFd, name: &str) -> OwnedFd {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)).unwrap();
    rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

#[test]
fn paths_past_path_max_and_wide_trees_build() {
    let d = Scratch::new("long");
    let src = d.path("src");
    std::fs::create_dir(&src).unwrap();
    let top = rustix::fs::open(&src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    // 30 nested 200-byte names: about 6,000 bytes of path below src.
    let mut image_path = String::new();
    let mut dir = mkdir_in(&top, &format!("{}0", "d".repeat(199)));
    image_path.push_str(&format!("/{}0", "d".repeat(199)));
    for i in 1..30 {
        let name = format!("{}{}", "d".repeat(200 - i.to_string().len()), i);
        dir = mkdir_in(&dir, &name);
        image_path.push('/');
        image_path.push_str(&name);
    }
    assert!(image_path.len() > 6000, "{}", image_path.len());
    let leaf = rustix::fs::openat(
        &dir,
        "leaf.txt",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o640),
    )
    .unwrap();
    let mut leaf = std::fs::File::from(leaf);
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    leaf.write_all(&content).unwrap();
    let xattr_ok =
        rustix::fs::fsetxattr(&leaf, "user.deep", b"yes", rustix::fs::XattrFlags::empty()).is_ok();
    drop(leaf);
    rustix::fs::symlinkat("leaf.txt", &dir, "link").unwrap();
    // ext4-view resolves paths of at most 4096 bytes: a second name at the top
    // lets it read the inode (written from the deep name, which sorts first).
    rustix::fs::linkat(&dir, "leaf.txt", &top, "short-leaf", AtFlags::empty()).unwrap();
    // The deepest directory's own xattrs, read through its parent's descriptor.
    let dir_xattr =
        rustix::fs::fsetxattr(&dir, "user.dir", b"d", rustix::fs::XattrFlags::empty()).is_ok();
    drop(dir);

    // Wide: 50 directories of 1,000 files each.
    let wide = mkdir_in(&top, "wide");
    for i in 0..50 {
        let sub = mkdir_in(&wide, &format!("w{i:02}"));
        for j in 0..1000 {
            let f = rustix::fs::openat(
                &sub,
                format!("f{j:04}").as_str(),
                OFlags::WRONLY | OFlags::CREATE,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            rustix::io::write(&f, format!("{i}/{j}\n").as_bytes()).unwrap();
        }
    }
    drop((wide, top));

    // At most 64 open files from here on: the walk must not keep descriptors.
    let limit = rustix::process::Rlimit {
        current: Some(64),
        maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();

    let img: PathBuf = d.path("long.img");
    let mut b = FsBuilder::new(Options {
        times: TimePolicy::Force(1),
        seed: Some(1),
        ..Options::default()
    });
    b.add_tree(&src, "/").unwrap();
    let report = b.write(&img).unwrap();
    assert!(report.inodes_used > 50_000, "{report:?}");
    common::e2fsck(&img);

    // debugfs walks down a name at a time: the deep file, its link and xattrs.
    let names: Vec<&str> = image_path.split('/').filter(|c| !c.is_empty()).collect();
    let dump = d.path("leaf.out");
    let mut cmds: Vec<String> = names.iter().map(|n| format!("cd {n}")).collect();
    cmds.push("stat leaf.txt".into());
    cmds.push(format!("dump leaf.txt {}", dump.display()));
    cmds.push("stat link".into());
    cmds.push("ea_list leaf.txt".into());
    cmds.push("cd /".into());
    cmds.push("stat short-leaf".into());
    let out = common::debugfs(&img, &cmds);
    let n = names.len();
    assert_eq!(
        std::fs::read(&dump).unwrap(),
        content,
        "deep file's contents"
    );
    let inode = |s: &str| {
        s.split("Inode:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    };
    assert!(out[n].contains("Links: 2"), "{}", out[n]);
    assert_eq!(inode(&out[n]), inode(&out[n + 5]), "one inode, two names");
    assert!(
        out[n + 2].contains("Fast link dest: \"leaf.txt\""),
        "{}",
        out[n + 2]
    );
    if xattr_ok {
        assert!(
            out[n + 3].contains("user.deep") && out[n + 3].contains("yes"),
            "{}",
            out[n + 3]
        );
    }
    if dir_xattr {
        let up: Vec<String> = names[..n - 1].iter().map(|c| format!("cd {c}")).collect();
        let mut c = up;
        c.push(format!("ea_list {}", names[n - 1]));
        let got = common::debugfs(&img, &c);
        assert!(got[n - 1].contains("user.dir"), "{got:?}");
    }

    // ext4-view: the contents (by the short name), and the deep chain as far as
    // its 4096-byte path limit reaches.
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    assert_eq!(fs.read("/short-leaf").unwrap(), content);
    assert_eq!(fs.metadata("/short-leaf").unwrap().mode() & 0o7777, 0o640);
    let mut p = String::new();
    for c in &names[..19] {
        let listed: Vec<String> = fs
            .read_dir(if p.is_empty() { "/" } else { p.as_str() })
            .unwrap()
            .map(|e| e.unwrap().file_name().as_str().unwrap().to_owned())
            .collect();
        assert!(listed.iter().any(|l| l == c), "{c} in {p}: {listed:?}");
        p.push('/');
        p.push_str(c);
    }
    assert_eq!(fs.read("/wide/w49/f0999").unwrap(), b"49/999\n");
    assert_eq!(fs.read_dir("/wide/w07").unwrap().count(), 1002);
}

//! Tar archives in, ext4 out: a generated tree (owners, modes, devices, fifos,
//! a setcap-like `security.capability`, user xattrs, hard links, symlinks,
//! nanosecond times, a sparse file) archived by GNU tar (`--xattrs --sparse
//! --format=posix` and its other sparse versions, and `--format=gnu`), built
//! with `FsBuilder::add_tar`, read back entry by entry with ext4-view and debugfs
//! (xattrs, device numbers, link counts and shared inodes, times, a sparse file's
//! allocated blocks); and corrupt archives give errors naming member and offset.
//! Making devices and setting owners and `security.*` needs root: without it
//! the tests say so and skip.
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::{Expect, Scratch, debugfs};
use ext4fs_builder::{EntryKind, Error, FileData, FsBuilder, Metadata, Options, Timestamp};
use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags};

/// `security.capability` as `setcap cap_net_raw+ep` writes it (VFS_CAP_REVISION_2).
const CAP_NET_RAW_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
const SPARSE: &str = "var/lib/sparse.img";
const SPARSE_LEN: u64 = 20 * 1024 * 1024 + 77;

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_times(p: &Path, a: (i64, i64), m: (i64, i64)) {
    let t = Timestamps {
        last_access: Timespec {
            tv_sec: a.0,
            tv_nsec: a.1,
        },
        last_modification: Timespec {
            tv_sec: m.0,
            tv_nsec: m.1,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, p, &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        rustix::fs::CWD,
        p,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mknod(p: &Path, ft: rustix::fs::FileType, mode: u32, dev: u64) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        ft,
        rustix::fs::Mode::from_raw_mode(mode),
        dev,
    )
    .unwrap();
}

/// A root filesystem-like tree (run as root).
fn generate(src: &Path) {
    for d in [
        "bin",
        "dev",
        "etc",
        "home/user",
        "run",
        "usr/lib",
        "var/lib",
        "data",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let w = |p: &str, data: &[u8], mode: u32| {
        std::fs::write(src.join(p), data).unwrap();
        std::fs::set_permissions(
            src.join(p),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
    };
    w("etc/motd", b"welcome\n", 0o644);
    w("etc/empty", b"", 0o600);
    w("bin/ping", b"\x7fELF ping", 0o755);
    w("bin/su", b"\x7fELF su", 0o4755);
    w("home/user/notes", &vec![b'n'; 70_000], 0o640);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w("usr/lib/big.so", &big, 0o644);
    w("data/a", b"three names", 0o644);
    std::fs::hard_link(src.join("data/a"), src.join("data/b")).unwrap();
    std::fs::hard_link(src.join("data/a"), src.join("etc/c")).unwrap();
    std::os::unix::fs::symlink("usr/lib", src.join("lib")).unwrap();
    std::os::unix::fs::symlink(format!("/{}", "t".repeat(150)), src.join("etc/long-link")).unwrap();
    // A path over 100 bytes (a pax `path` record).
    let deep = format!("usr/lib/{}/{}", "x".repeat(90), "y".repeat(60));
    std::fs::create_dir_all(src.join(&deep)).unwrap();
    w(&format!("{deep}/file"), b"deep", 0o644);
    let f = std::fs::File::create(src.join(SPARSE)).unwrap();
    f.write_all_at(&[1u8; 5000], 0).unwrap();
    f.write_all_at(&[2u8; 4096], 8 << 20).unwrap();
    f.write_all_at(&[3u8; 77], SPARSE_LEN - 77).unwrap();
    drop(f);
    use rustix::fs::FileType as T;
    mknod(
        &src.join("dev/null"),
        T::CharacterDevice,
        0o666,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        &src.join("dev/sda"),
        T::BlockDevice,
        0o660,
        rustix::fs::makedev(8, 0),
    );
    mknod(
        &src.join("dev/big"),
        T::CharacterDevice,
        0o600,
        rustix::fs::makedev(300, 70_000),
    );
    mknod(&src.join("run/fifo"), T::Fifo, 0o620, 0);
    rustix::fs::setxattr(
        src.join("bin/ping").as_path(),
        "security.capability",
        &CAP_NET_RAW_EP,
        XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        src.join("etc/motd").as_path(),
        "user.comment",
        &[b'c'; 300][..],
        XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        src.join("home/user").as_path(),
        "trusted.mark",
        b"t",
        XattrFlags::empty(),
    )
    .unwrap();
    chown(&src.join("home/user"), 1000, 1000);
    chown(&src.join("home/user/notes"), 1000, 100);
    chown(&src.join("dev/sda"), 0, 6);
    chown(&src.join("lib"), 7, 8);
    set_times(
        &src.join("etc/motd"),
        (1_600_000_000, 123_456_789),
        (1_500_000_000, 987_654_321),
    );
    // readlink sets a symlink's atime unless it is after its ctime (relatime):
    // GNU tar's readlink would change it between archives.
    set_times(&src.join("lib"), (2_000_000_000, 1), (1_400_000_001, 2));
    // Twice, apart: the first may leave atime equal to a coarse ctime.
    for _ in 0..2 {
        std::fs::read_link(src.join("etc/long-link")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    set_times(
        &src.join("data/a"),
        (1_300_000_000, 3),
        (1_300_000_001, 999_999_999),
    );
    set_times(&src.join("etc"), (1_200_000_000, 4), (1_200_000_001, 5));
}

/// xattrs of a host path (not followed), sorted by name.
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap();
    let mut out = Vec::new();
    for name in list[..n].split(|&c| c == 0).filter(|s| !s.is_empty()) {
        let mut v = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        v.truncate(len);
        out.push((String::from_utf8(name.to_vec()).unwrap(), v));
    }
    out.sort();
    out
}

/// The tree as an archive of it must hold it, taken before it is archived (GNU tar
/// records atimes as it finds them, before it reads).
fn expect(src: &Path) -> BTreeMap<String, Expect> {
    let mut ex = BTreeMap::new();
    let mut first: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut stack = vec![(src.to_path_buf(), "/".to_owned())];
    while let Some((host, image)) = stack.pop() {
        let m = std::fs::symlink_metadata(&host).unwrap();
        let t = |s, n: i64| Timestamp {
            sec: s,
            nsec: n as u32,
        };
        let mut meta = Metadata::new((m.mode() & 0o7777) as u16, t(m.mtime(), m.mtime_nsec()));
        meta.atime = t(m.atime(), m.atime_nsec());
        meta.ctime = t(m.ctime(), m.ctime_nsec());
        (meta.uid, meta.gid) = (m.uid(), m.gid());
        meta.xattrs = xattrs(&host);
        let ft = m.file_type();
        let (maj, min) = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
        let kind = if ft.is_dir() {
            for e in std::fs::read_dir(&host).unwrap() {
                let n = e.unwrap().file_name();
                let child = format!("{}/{}", image.trim_end_matches('/'), n.to_str().unwrap());
                stack.push((host.join(&n), child));
            }
            EntryKind::Dir
        } else if let Some(f) = first.get(&(m.dev(), m.ino())) {
            EntryKind::HardLink(f.clone())
        } else if ft.is_file() {
            EntryKind::File(FileData::Bytes(std::fs::read(&host).unwrap()))
        } else if ft.is_symlink() {
            EntryKind::Symlink(std::fs::read_link(&host).unwrap())
        } else if ft.is_char_device() {
            EntryKind::CharDev {
                major: maj,
                minor: min,
            }
        } else if ft.is_block_device() {
            EntryKind::BlockDev {
                major: maj,
                minor: min,
            }
        } else {
            EntryKind::Fifo
        };
        if !ft.is_dir() && m.nlink() > 1 {
            first
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| image.clone());
        }
        ex.insert(image, Expect { kind, meta });
    }
    // Hard links: the first name in archive order (GNU tar sorts by name with
    // --sort=name) holds the data; the expectation's first name may differ, which
    // changes nothing the checks see but the link's target name.
    ex
}

fn gnu_tar(src: &Path, tar: &Path, args: &[&str]) {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(src)
        .args(args)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .output()
        .expect("run GNU tar");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn build(tar: &Path, img: &Path) -> Timestamp {
    let mut b = FsBuilder::new(Options {
        seed: Some(5),
        ..Options::default()
    });
    b.add_tar(std::fs::File::open(tar).unwrap(), "/").unwrap();
    let built = b.build_time();
    b.write(img).unwrap();
    built
}

/// 512-byte blocks an image file takes (debugfs `Blockcount`), and its inode number.
fn blocks_and_inode(img: &Path, path: &str) -> (u64, u64) {
    let out = debugfs(img, &[format!("stat {path}")]).remove(0);
    let field = |k: &str| -> u64 {
        out.split(k)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} of {path}: {out}"))
    };
    (field("Blockcount:"), field("Inode:"))
}

#[test]
fn gnu_tar_posix_archives_round_trip() {
    if !root() {
        eprintln!("skipped: making devices, owners and security.* xattrs needs root");
        return;
    }
    let d = Scratch::new("tar");
    let src = d.path("src");
    std::fs::create_dir(&src).unwrap();
    generate(&src);
    // GNU tar reads with O_NOATIME (root may): every archive records the same
    // atimes, and the expectation is taken after them (it stats before it reads).
    let variants = [
        (
            "1.0",
            &[
                "--xattrs",
                "--xattrs-include=*",
                "--sparse",
                "--format=posix",
            ][..],
        ),
        (
            "0.1",
            &[
                "--xattrs",
                "--xattrs-include=*",
                "--sparse",
                "--sparse-version=0.1",
                "--format=posix",
            ],
        ),
        (
            "0.0",
            &[
                "--xattrs",
                "--xattrs-include=*",
                "--sparse",
                "--sparse-version=0.0",
                "--format=posix",
            ],
        ),
    ];
    for (n, args) in variants {
        let mut args = args.to_vec();
        args.push("--atime-preserve=system");
        gnu_tar(&src, &d.path(&format!("rootfs-{n}.tar")), &args);
    }
    let mut ex = expect(&src);
    for (n, _) in variants {
        let tar = d.path(&format!("rootfs-{n}.tar"));
        let img = d.path(&format!("rootfs-{n}.img"));
        let built = build(&tar, &img);
        ex.insert(
            "/lost+found".into(),
            Expect {
                kind: EntryKind::Dir,
                meta: Metadata::new(0o700, built),
            },
        );
        common::verify(&img, &ex);
        // One inode for the three names, link count 3.
        let (_, a) = blocks_and_inode(&img, "/data/a");
        let (_, b) = blocks_and_inode(&img, "/data/b");
        let (_, c) = blocks_and_inode(&img, "/etc/c");
        assert!(
            a == b && b == c,
            "sparse {n}: hard links are one inode: {a} {b} {c}"
        );
        // The sparse file keeps its holes: 3 stretches of data, not 20 MiB.
        let (blocks, _) = blocks_and_inode(&img, &format!("/{SPARSE}"));
        assert!(
            blocks * 512 < 64 * 1024,
            "sparse {n}: {SPARSE} takes {} bytes",
            blocks * 512
        );
    }
}

#[test]
fn gnu_format_and_sparse_members() {
    // Old GNU format ('S' sparse members, GNU long names); no root needed.
    let d = Scratch::new("gnutar");
    let src = d.path("src");
    let deep = format!("{}/{}", "l".repeat(120), "m".repeat(100));
    std::fs::create_dir_all(src.join(&deep)).unwrap();
    std::fs::write(src.join(&deep).join("f"), b"long name").unwrap();
    let f = std::fs::File::create(src.join("sparse")).unwrap();
    // More than 4 data stretches: the map continues in extension blocks.
    for i in 0..9u64 {
        f.write_all_at(&[i as u8 + 1; 1000], i * (1 << 20)).unwrap();
    }
    f.set_len(10 << 20).unwrap();
    drop(f);
    let want_sparse = std::fs::read(src.join("sparse")).unwrap();
    for fmt in ["--format=gnu", "--format=oldgnu"] {
        let tar = d.path("g.tar");
        gnu_tar(&src, &tar, &["--sparse", fmt]);
        let img = d.path("g.img");
        build(&tar, &img);
        common::e2fsck(&img);
        let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
        assert_eq!(
            fs.read(format!("/{deep}/f").as_str()).unwrap(),
            b"long name"
        );
        assert!(
            fs.read("/sparse").unwrap() == want_sparse,
            "{fmt}: sparse contents"
        );
        let (blocks, _) = blocks_and_inode(&img, "/sparse");
        assert!(
            blocks * 512 < 200 * 1024,
            "{fmt}: {} bytes allocated",
            blocks * 512
        );
    }
}

/// The error `add_tar` gives for these archive bytes.
fn tar_error(bytes: &[u8]) -> Error {
    let mut b = FsBuilder::new(Options::default());
    b.add_tar(bytes, "/").expect_err("a bad archive is refused")
}

#[test]
fn corrupt_archives_name_member_and_offset() {
    let d = Scratch::new("badtar");
    let src = d.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/aaa"), vec![1u8; 3000]).unwrap();
    std::fs::write(src.join("etc/zzz"), vec![2u8; 3000]).unwrap();
    let tar = d.path("t.tar");
    gnu_tar(&src, &tar, &["--format=posix"]);
    let good = std::fs::read(&tar).unwrap();
    let at = |name: &[u8]| -> usize {
        (0..good.len() / 512)
            .map(|i| i * 512)
            .find(|&o| good[o..o + 100].starts_with(name) && good[o + 156] == b'0')
            .unwrap()
    };
    let zzz = at(b"./etc/zzz");
    // Cut inside zzz's data.
    let msg = tar_error(&good[..zzz + 512 + 1000]).to_string();
    assert!(
        msg.contains("member \"./etc/zzz\"") && msg.contains("ends inside this member's data"),
        "{msg}"
    );
    // A damaged header: its checksum no longer matches.
    let mut bad = good.clone();
    bad[zzz + 10] ^= 0x55;
    let e = tar_error(&bad);
    match &e {
        Error::BadTar { offset, reason, .. } => {
            assert_eq!(*offset, zzz as u64, "{e}");
            assert!(reason.contains("checksum"), "{e}");
        }
        _ => panic!("{e}"),
    }
    assert!(e.to_string().contains(&format!("at byte {zzz}")), "{e}");
    // Compressed, and not a tar at all.
    let mut gz = Vec::new();
    gz.write_all(b"\x1f\x8b\x08\x00rest of a gzip stream")
        .unwrap();
    gz.resize(1024, 0);
    assert!(
        tar_error(&gz)
            .to_string()
            .contains("gzip-compressed data: decompress it first")
    );
    let junk = vec![b'j'; 2048];
    assert!(tar_error(&junk).to_string().contains("not a tar archive"));
    // A hard link to a member that is not there.
    let mut link = Vec::new();
    let mut h = [0u8; 512];
    h[..7].copy_from_slice(b"./hard\0");
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(b"00000000000\0");
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'1';
    h[157..167].copy_from_slice(b"./missing\0");
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    link.extend_from_slice(&h);
    link.resize(512 * 4, 0);
    let msg = tar_error(&link).to_string();
    assert!(
        msg.contains("\"./hard\"") && msg.contains("not in the archive before it"),
        "{msg}"
    );
}

/// Holes are data the writer never reads: a reader that hands out a few bytes at
/// a time (as a pipe from a decompressor does) gives the same image.
#[test]
fn a_trickling_reader_gives_the_same_image() {
    struct Trickle<R>(R);
    impl<R: std::io::Read> std::io::Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }
    let d = Scratch::new("trickle");
    let src = d.path("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/f"), vec![5u8; 10_000]).unwrap();
    let tar = d.path("t.tar");
    gnu_tar(&src, &tar, &["--format=posix", "--sparse"]);
    let opts = Options {
        seed: Some(1),
        times: ext4fs_builder::TimePolicy::Force(9),
        ..Options::default()
    };
    let mut a = FsBuilder::new(opts.clone());
    a.add_tar(std::fs::File::open(&tar).unwrap(), "/srv")
        .unwrap();
    a.write(&d.path("a.img")).unwrap();
    let mut b = FsBuilder::new(opts);
    b.add_tar(Trickle(std::fs::File::open(&tar).unwrap()), "/srv")
        .unwrap();
    b.write(&d.path("b.img")).unwrap();
    let (ia, ib) = (
        std::fs::read(d.path("a.img")).unwrap(),
        std::fs::read(d.path("b.img")).unwrap(),
    );
    assert!(ia == ib, "images differ");
    let fs = ext4_view::Ext4::load_from_path(d.path("a.img")).unwrap();
    assert_eq!(fs.read("/srv/a/f").unwrap(), vec![5u8; 10_000]);
}

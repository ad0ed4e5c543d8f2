//! The initramfs writer checked with the real tools: GNU `cpio -itv` lists
//! what we wrote, `cpio -idv` extracts it byte for byte, `gzip -t` accepts
//! the compressed form; output is byte-identical across runs; a header whose
//! declared size is not met is an error that leaves no output file.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cpio_listing, have, run_ok};
use imgbuild::initramfs::{Archive, CpioError, Encoding, Record};

const MTIME: u64 = 1_700_000_000; // 2023-11-14

/// Deterministic pseudo-random bytes (odd length, so padding is exercised).
fn blob(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An archive like the real initramfs, built in the given insertion order.
fn sample(host: &Path, reverse: bool, with_devices: bool) -> Archive {
    let mut recs = vec![
        Record::file("/init", 0o755, blob(100_003, 1)),
        Record::file("etc/imgbuild/init.conf", 0o644, b"stage = 1\n".to_vec()),
        Record::host_file(
            "lib/modules/6.1.0-56-amd64/kernel/drivers/block/xen-blkfront.ko",
            0o644,
            &host.join("xen-blkfront.ko"),
        )
        .unwrap(),
        Record::symlink("bin/sh", "busybox"),
        Record::dir("/tmp", 0o1777),
        Record::file("empty", 0o600, Vec::new()),
        Record::file("dup", 0o644, b"first".to_vec()),
    ];
    if with_devices {
        recs.push(Record::char_dev("dev/console", 0o600, 5, 1));
        recs.push(Record::block_dev("dev/vda", 0o660, 254, 0));
    }
    recs.push(Record::fifo("run/initctl", 0o600));
    if reverse {
        recs.reverse();
    }
    let mut a = Archive::new(MTIME);
    for r in recs {
        a.add(r).unwrap();
    }
    a.add(Record::file("./dup", 0o644, b"second wins".to_vec()))
        .unwrap();
    a
}

fn host_files() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("xen-blkfront.ko"), blob(54_321, 2)).unwrap();
    tmp
}

/// [`sample`] (in insertion order) written as a plain cpio archive
/// `initrd.cpio` into a scratch directory: that directory and the path.
fn write_sample_cpio(with_devices: bool) -> (tempfile::TempDir, PathBuf) {
    let host = host_files();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("initrd.cpio");
    sample(host.path(), false, with_devices)
        .write_file(&path, Encoding::Cpio)
        .unwrap();
    (out, path)
}

#[test]
fn cpio_lists_what_we_wrote() {
    assert!(have("cpio"), "GNU cpio is required (apt-get install cpio)");
    let (_out, path) = write_sample_cpio(true);
    let listing = cpio_listing(&path, false);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split(" -> ").next().unwrap().rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/sh",
            "dev",
            "dev/console",
            "dev/vda",
            "dup",
            "empty",
            "etc",
            "etc/imgbuild",
            "etc/imgbuild/init.conf",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/6.1.0-56-amd64",
            "lib/modules/6.1.0-56-amd64/kernel",
            "lib/modules/6.1.0-56-amd64/kernel/drivers",
            "lib/modules/6.1.0-56-amd64/kernel/drivers/block",
            "lib/modules/6.1.0-56-amd64/kernel/drivers/block/xen-blkfront.ko",
            "run",
            "run/initctl",
            "tmp",
        ],
        "{listing}"
    );
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| {
                l.split(" -> ")
                    .next()
                    .unwrap()
                    .ends_with(&format!(" {name}"))
            })
            .unwrap()
            .to_owned()
    };
    assert!(
        line("bin").starts_with("drwxr-xr-x   2 root     root "),
        "{listing}"
    );
    assert!(
        line("bin/sh").starts_with("lrwxrwxrwx") && line("bin/sh").ends_with("bin/sh -> busybox")
    );
    assert!(line("dev/console").starts_with("crw-------"), "{listing}");
    assert!(line("dev/console").contains(" 5,   1 "), "{listing}");
    assert!(line("dev/vda").starts_with("brw-rw----"), "{listing}");
    assert!(line("run/initctl").starts_with("prw-------"), "{listing}");
    assert!(line("tmp").starts_with("drwxrwxrwt"), "{listing}");
    assert!(
        line("init").starts_with("-rwxr-xr-x   1 root     root       100003 Nov 14  2023 init"),
        "{listing}"
    );
    // lib/modules/<kver> has one subdirectory: link count 3.
    assert!(
        line("lib/modules").starts_with("drwxr-xr-x   3 "),
        "{listing}"
    );
}

#[test]
fn cpio_extracts_every_byte() {
    assert!(have("cpio"), "GNU cpio is required (apt-get install cpio)");
    // Device nodes need root to extract; they are checked by the listing test.
    let (out, path) = write_sample_cpio(false);
    let dest = out.path().join("x");
    std::fs::create_dir(&dest).unwrap();
    run_ok(
        Command::new("cpio")
            .args(["-idvm", "--no-absolute-filenames", "-F"])
            .arg(&path)
            .current_dir(&dest),
    );
    assert_eq!(std::fs::read(dest.join("init")).unwrap(), blob(100_003, 1));
    let ko = dest.join("lib/modules/6.1.0-56-amd64/kernel/drivers/block/xen-blkfront.ko");
    assert_eq!(std::fs::read(&ko).unwrap(), blob(54_321, 2));
    assert_eq!(std::fs::read(dest.join("dup")).unwrap(), b"second wins");
    assert_eq!(std::fs::read(dest.join("empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let meta = std::fs::metadata(dest.join("init")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), i64::try_from(MTIME).unwrap());
    assert_eq!(
        std::fs::metadata(dest.join("empty"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600
    );
}

#[test]
fn gzip_accepts_it_and_output_is_deterministic() {
    assert!(have("gzip"), "gzip is required");
    let host = host_files();
    let out = tempfile::tempdir().unwrap();
    let a = out.path().join("a.img");
    let b = out.path().join("b.img");
    sample(host.path(), false, true)
        .write_file(&a, Encoding::Gzip(9))
        .unwrap();
    // Different insertion order, and the host file touched (new mtime): same bytes.
    std::fs::write(host.path().join("xen-blkfront.ko"), blob(54_321, 2)).unwrap();
    sample(host.path(), true, true)
        .write_file(&b, Encoding::Gzip(9))
        .unwrap();
    let (ga, gb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ga, gb, "two builds differ");
    // gzip header: magic, deflate, no FNAME flag, mtime 0.
    assert_eq!(&ga[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&ga[4..8], &[0, 0, 0, 0]);
    let st = Command::new("gzip").arg("-t").arg(&a).status().unwrap();
    assert!(st.success(), "gzip -t rejected the initramfs");
    // Decompressed, it is exactly the plain archive.
    let plain = sample(host.path(), false, true).write(Vec::new()).unwrap();
    let res = Command::new("gzip").arg("-dc").arg(&a).output().unwrap();
    assert_eq!(res.stdout, plain);
    // Headers: inode numbers 1..n in order, one mtime, owners 0.
    let mut off = 0usize;
    let mut ino = 0u32;
    loop {
        let h = std::str::from_utf8(&plain[off..off + 110]).unwrap();
        assert_eq!(&h[..6], "070701");
        let field = |i: usize| u32::from_str_radix(&h[6 + i * 8..14 + i * 8], 16).unwrap();
        let (namesize, filesize) = (field(11) as usize, field(6) as usize);
        let name = std::str::from_utf8(&plain[off + 110..off + 110 + namesize - 1]).unwrap();
        if name == "TRAILER!!!" {
            assert_eq!(
                (off + 110 + namesize).next_multiple_of(4),
                plain.len(),
                "trailer is last"
            );
            break;
        }
        ino += 1;
        assert_eq!(field(0), ino, "{name}");
        assert_eq!((field(2), field(3)), (0, 0), "{name}");
        assert_eq!(u64::from(field(5)), MTIME, "{name}");
        off = (off + 110 + namesize).next_multiple_of(4);
        off = (off + filesize).next_multiple_of(4);
    }
    assert_eq!(ino, 21);
}

#[test]
fn declared_size_not_met_is_an_error_and_writes_nothing() {
    let host = host_files();
    let archive = sample(host.path(), false, false);
    // The module shrinks after the record was made.
    std::fs::write(host.path().join("xen-blkfront.ko"), b"short").unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("initrd.img");
    let err = archive.write_file(&path, Encoding::Gzip(9)).unwrap_err();
    assert!(
        matches!(
            err,
            CpioError::SizeMismatch {
                declared: 54_321,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("xen-blkfront.ko"), "{err}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no output, no temp file"
    );
}

#[test]
fn bad_names_and_parents() {
    let mut a = Archive::new(0);
    assert!(matches!(
        a.add(Record::file("../etc/x", 0o644, Vec::new())),
        Err(CpioError::BadName(_))
    ));
    assert!(matches!(
        a.add(Record::file("/", 0o644, Vec::new())),
        Err(CpioError::BadName(_))
    ));
    a.add(Record::file("init", 0o755, b"x".to_vec())).unwrap();
    a.add(Record::file("init/child", 0o644, b"y".to_vec()))
        .unwrap();
    let err = a.write(Vec::new()).unwrap_err();
    assert!(
        matches!(err, CpioError::ParentNotDir { ref parent, .. } if parent == "init"),
        "{err}"
    );
}

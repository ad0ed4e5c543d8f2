//! Same inputs, timestamp and seed give byte-identical images; the seed picks the UUID.
mod common;

use common::Scratch;
use ext4fs_builder::{FsBuilder, Options, TimePolicy};

fn build(src: &std::path::Path, img: &std::path::Path, seed: u64) -> [u8; 16] {
    let mut b = FsBuilder::new(Options {
        times: TimePolicy::Force(1_234_567_890),
        seed: Some(seed),
        ..Options::default()
    });
    b.add_tree(src, "/").unwrap();
    b.write(img).unwrap().uuid
}

#[test]
fn two_builds_are_identical() {
    let d = Scratch::new("repro");
    let src = d.path("src");
    for i in 0..200 {
        let p = src.join(format!("d{}/f{i}", i % 7));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![i as u8; i * 37]).unwrap();
    }
    std::os::unix::fs::symlink("d1/f1", src.join("link")).unwrap();
    let (a, b, c) = (d.path("a.img"), d.path("b.img"), d.path("c.img"));
    let ua = build(&src, &a, 42);
    // Touch the sources in between: atime/ctime changes must not matter.
    let _ = std::fs::read(src.join("d1/f1")).unwrap();
    let ub = build(&src, &b, 42);
    assert_eq!(ua, ub);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "images differ"
    );
    let uc = build(&src, &c, 43);
    assert_ne!(ua, uc, "a different seed gives a different UUID");
    common::e2fsck(&a);
    let out = common::debugfs(&a, &["stats".into()]);
    let hex: String = ua.iter().map(|b| format!("{b:02x}")).collect();
    let shown: String = out[0]
        .split("Filesystem UUID:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .replace('-', "");
    assert_eq!(shown, hex);
}

#[test]
fn progress_counts_up_to_the_total_and_does_not_change_the_image() {
    let d = Scratch::new("progress");
    let src = d.path("src");
    let mut file_bytes = 0u64;
    for i in 0..50usize {
        let p = src.join(format!("d{}/f{i}", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![7u8; i * 1000]).unwrap();
        file_bytes += (i * 1000) as u64;
    }
    let opts = || Options {
        times: TimePolicy::Force(1_234_567_890),
        seed: Some(7),
        ..Options::default()
    };
    let (a, b) = (d.path("a.img"), d.path("b.img"));
    let mut seen = Vec::new();
    let mut fs = FsBuilder::new(opts());
    fs.add_tree(&src, "/").unwrap();
    fs.write_with_progress(&a, &mut |p| seen.push(p)).unwrap();
    let mut fs = FsBuilder::new(opts());
    fs.add_tree(&src, "/").unwrap();
    fs.write(&b).unwrap();
    common::e2fsck(&a);

    let last = *seen.last().expect("progress was reported");
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(last.bytes_total >= file_bytes, "{last:?} < {file_bytes}");
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
    assert!(seen.iter().all(|p| p.bytes_total == last.bytes_total));
    assert!(seen.len() > 50, "one report per inode: {}", seen.len());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

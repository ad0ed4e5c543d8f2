//! Minimal driver: `mkfs <dir> <image> [block-size] [size|auto] [nojournal]`.
use std::path::Path;

use ext4fs_builder::{BlockSize, FsBuilder, Options, SizeSpec, TimePolicy};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: mkfs <dir> <image> [block-size] [size|auto] [nojournal]");
        std::process::exit(2);
    }
    let mut o = Options {
        times: TimePolicy::Force(1_700_000_000),
        seed: Some(1),
        ..Options::default()
    };
    if let Some(bs) = a.get(3) {
        o.block_size = BlockSize::from_bytes(bs.parse().unwrap_or(4096)).unwrap_or_default();
    }
    if let Some(s) = a.get(4) {
        o.size = SizeSpec::parse(s).unwrap_or(SizeSpec::Auto);
    }
    o.journal = a.get(5).map(|s| s != "nojournal").unwrap_or(true);
    let mut b = FsBuilder::new(o);
    let r = b
        .add_tree(Path::new(&a[1]), "/")
        .and_then(|()| b.write(Path::new(&a[2])));
    match r {
        Ok(r) => println!("{r:?}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

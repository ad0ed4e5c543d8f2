//! Test fixtures: small `.deb` files built in memory.

use std::io::Write;

use super::ar;

/// One tar entry of a fixture.
#[derive(Debug, Clone)]
pub(crate) enum Item<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDev(&'a str, u32, u32),
    Fifo(&'a str),
}

/// Writes the entry name straight into the header, so that fixtures can hold
/// the hostile names (`../x`, `/etc/x`) the tar crate refuses to create.
fn header(name: &str, ty: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let bytes = name.as_bytes();
    assert!(bytes.len() < 100, "fixture names are short");
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    h.set_cksum();
    h
}

fn link_header(name: &str, ty: tar::EntryType, target: &str) -> tar::Header {
    let mut h = header(name, ty, 0o777, 0);
    let field = &mut h.as_old_mut().linkname;
    field.fill(0);
    field[..target.len()].copy_from_slice(target.as_bytes());
    h.set_cksum();
    h
}

/// A plain tar archive of `items`.
pub(crate) fn tar(items: &[Item<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        match item {
            Item::Dir(n, mode) => b
                .append(&header(n, tar::EntryType::Directory, *mode, 0), &[][..])
                .unwrap(),
            Item::File(n, mode, data) => b
                .append(
                    &header(n, tar::EntryType::Regular, *mode, data.len() as u64),
                    *data,
                )
                .unwrap(),
            Item::Symlink(n, t) => b
                .append(&link_header(n, tar::EntryType::Symlink, t), &[][..])
                .unwrap(),
            Item::HardLink(n, t) => b
                .append(&link_header(n, tar::EntryType::Link, t), &[][..])
                .unwrap(),
            Item::CharDev(n, major, minor) => {
                let mut h = header(n, tar::EntryType::Char, 0o600, 0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Item::Fifo(n) => b
                .append(&header(n, tar::EntryType::Fifo, 0o600, 0), &[][..])
                .unwrap(),
        }
    }
    b.into_inner().unwrap()
}

/// Compresses `data` for a member named `*.{ext}` (`xz`, `zst`, `gz`, `tar`).
pub(crate) fn compress(data: &[u8], ext: &str) -> Vec<u8> {
    match ext {
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        "tar" => data.to_vec(),
        _ => panic!("unknown extension {ext}"),
    }
}

/// A `.deb` with `control` text and `items` as data, both compressed as `ext`.
pub(crate) fn deb(control: &str, items: &[Item<'_>], ext: &str) -> Vec<u8> {
    let control_tar = tar(&[
        Item::Dir("./", 0o755),
        Item::File("./control", 0o644, control.as_bytes()),
    ]);
    let suffix = |base: &str| {
        if ext == "tar" {
            base.to_owned()
        } else {
            format!("{base}.{ext}")
        }
    };
    let c = compress(&control_tar, ext);
    let d = compress(&tar(items), ext);
    ar::tests::build(&[
        ("debian-binary", b"2.0\n"),
        (&suffix("control.tar"), &c),
        (&suffix("data.tar"), &d),
    ])
}

/// A minimal control file.
pub(crate) fn control(name: &str, version: &str, depends: Option<&str>) -> String {
    let mut s = format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\n");
    if let Some(d) = depends {
        s.push_str(&format!("Depends: {d}\n"));
    }
    s.push_str("Description: test fixture\n");
    s
}

//! Seeded random directory trees and what a filesystem must show of them:
//! type and permission bits, size, link count, sha256 of file contents,
//! symlink targets. The same description is parsed from the guest's
//! `stat`/`sha256sum`/`readlink` output, so host and guest can be compared.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// SplitMix64: small, deterministic, good enough to pick sizes and names.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// What a filesystem must show of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    pub size: u64,
    /// Link count (not compared for directories: it depends on the host's filesystem).
    pub nlink: u64,
    /// sha256 of the contents (regular files).
    pub sha256: Option<String>,
    /// Target (symlinks).
    pub target: Option<String>,
    /// (uid, gid), where compared ([`host_listing_full`], [`GUEST_LIST_COMMAND_FULL`]).
    pub owner: Option<(u32, u32)>,
    /// Modification time in seconds, where compared.
    pub mtime: Option<i64>,
}

/// Entries keyed by path relative to the root, as `./a/b` (like `find .`).
pub type Listing = BTreeMap<String, Entry>;

/// The path of a large sparse file in every generated tree.
pub const HOLEY: &str = "./holes/sparse.bin";
/// Its length, of which only a few KiB hold data.
pub const HOLEY_LEN: u64 = 8 * 1024 * 1024 + 123;

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates a random tree under `root` (which must exist and be empty):
/// nested directories, files of sizes around 1 KiB / 4 KiB block boundaries
/// and up to a few MiB, a sparse file with holes, a 200-entry directory,
/// symlinks (relative, absolute, dangling, to directories), a hard link,
/// names with spaces, UTF-8 and 255 bytes, assorted permissions.
pub fn generate(root: &Path, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut dirs = vec![root.to_path_buf()];
    let dir_modes = [0o755, 0o700, 0o750, 0o775, 0o1777];
    for i in 0..14 {
        let parent = dirs[rng.below(dirs.len())].clone();
        let d = parent.join(format!("d{i}-{}", rng.below(10_000)));
        std::fs::create_dir(&d)?;
        dirs.push(d);
    }
    let sizes = [
        0usize, 1, 511, 512, 1023, 1024, 1025, 4095, 4096, 4097, 8192, 65_536, 65_537, 1_048_577,
    ];
    let file_modes = [0o644, 0o600, 0o755, 0o444, 0o640, 0o4755];
    for i in 0..70 {
        let d = dirs[rng.below(dirs.len())].clone();
        let len = match sizes.get(i) {
            Some(s) => *s,
            None => rng.below(200_000),
        };
        let name = match i % 9 {
            0 => format!("long-{}-{i}", "n".repeat(200 + rng.below(40))),
            1 => format!("with space {i}.txt"),
            2 => format!("ünïcødé-ファイル-{i}"),
            3 => format!(".hidden-{i}"),
            _ => format!("f{i}.bin"),
        };
        write_file(
            &d.join(name),
            &rng.bytes(len),
            file_modes[rng.below(file_modes.len())],
        )?;
    }
    // Several MiB: many blocks, several extents at 1 KiB blocks.
    write_file(
        &root.join("big.bin"),
        &rng.bytes(5 * 1024 * 1024 + 17),
        0o644,
    )?;

    // A sparse file: data at the start, in the middle, at the end.
    let holes = root.join("holes");
    std::fs::create_dir(&holes)?;
    let mut f = std::fs::File::create(root.join(&HOLEY[2..]))?;
    f.write_all(&rng.bytes(4096))?;
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(3 * 1024 * 1024 + 100))?;
    f.write_all(&rng.bytes(5000))?;
    f.seek(SeekFrom::Start(HOLEY_LEN - 77))?;
    f.write_all(&rng.bytes(77))?;
    drop(f);

    // A directory too big for one block (hashed / multi-block directory).
    let many = root.join("many");
    std::fs::create_dir(&many)?;
    for i in 0..200 {
        write_file(
            &many.join(format!("entry-{i:04}-{}", rng.below(1_000_000))),
            format!("{i}\n").as_bytes(),
            0o644,
        )?;
    }

    // Symlinks: relative, absolute, dangling, to a directory, long target.
    let links = root.join("links");
    std::fs::create_dir(&links)?;
    std::os::unix::fs::symlink("../big.bin", links.join("rel"))?;
    std::os::unix::fs::symlink("/etc/motd", links.join("abs"))?;
    std::os::unix::fs::symlink("does/not/exist", links.join("dangling"))?;
    std::os::unix::fs::symlink("../many", links.join("dir"))?;
    let long_target = format!("{}/x", "t".repeat(150));
    std::os::unix::fs::symlink(&long_target, links.join("long-target"))?;

    // A hard link: one inode, two names, link count 2.
    write_file(&root.join("hard-a"), &rng.bytes(3000), 0o644)?;
    std::fs::hard_link(root.join("hard-a"), links.join("hard-b"))?;

    for (i, d) in dirs.iter().enumerate().skip(1) {
        std::fs::set_permissions(
            d,
            std::fs::Permissions::from_mode(dir_modes[i % dir_modes.len()]),
        )?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// [`host_listing`] with owners and mtimes, for [`GUEST_LIST_COMMAND_FULL`].
pub fn host_listing_full(root: &Path) -> std::io::Result<Listing> {
    let mut l = host_listing(root)?;
    for (k, e) in l.iter_mut() {
        let md = std::fs::symlink_metadata(root.join(&k[2..]))?;
        e.owner = Some((md.uid(), md.gid()));
        e.mtime = Some(md.mtime());
    }
    Ok(l)
}

/// Lists the tree under `root` as the guest will (`.` itself excluded).
pub fn host_listing(root: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            let md = std::fs::symlink_metadata(&p)?;
            let rel = p.strip_prefix(root).map_err(std::io::Error::other)?;
            let key = format!("./{}", rel.to_string_lossy());
            let ft = md.file_type();
            let entry = Entry {
                mode: md.mode(),
                size: if ft.is_dir() { 0 } else { md.size() },
                nlink: if ft.is_dir() { 0 } else { md.nlink() },
                sha256: if ft.is_file() {
                    Some(sha256_file(&p)?)
                } else {
                    None
                },
                target: if ft.is_symlink() {
                    Some(std::fs::read_link(&p)?.to_string_lossy().into_owned())
                } else {
                    None
                },
                owner: None,
                mtime: None,
            };
            if ft.is_dir() {
                stack.push(p);
            }
            out.insert(key, entry);
        }
    }
    Ok(out)
}

/// The shell command (one line) that prints a guest directory's listing
/// for [`parse_guest_listing`]: run it from inside the mounted directory.
pub const GUEST_LIST_COMMAND: &str = "find . ! -path . -exec stat -c 'S|%f|%s|%h|%b|%n' {} +; \
    find . -type f -exec sha256sum {} +; \
    find . -type l | while IFS= read -r l; do printf 'L|%s|%s\\n' \"$(readlink \"$l\")\" \"$l\"; done";

/// [`GUEST_LIST_COMMAND`] with owners and mtimes (`F|` lines).
pub const GUEST_LIST_COMMAND_FULL: &str = "find . ! -path . -exec stat -c 'F|%f|%s|%h|%b|%u|%g|%Y|%n' {} +; \
    find . -type f -exec sha256sum {} +; \
    find . -type l | while IFS= read -r l; do printf 'L|%s|%s\\n' \"$(readlink \"$l\")\" \"$l\"; done";

/// What the guest printed, parsed: the listing and the 512-byte block count of each entry.
pub fn parse_guest_listing(text: &str) -> Result<(Listing, BTreeMap<String, u64>), String> {
    let mut out = Listing::new();
    let mut blocks = BTreeMap::new();
    let bad = |l: &str| format!("unexpected line from the guest: {l:?}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("F|") {
            let f: Vec<&str> = rest.splitn(8, '|').collect();
            let [mode, size, nlink, b, uid, gid, mtime, name] = f[..] else {
                return Err(bad(line));
            };
            let mode = u32::from_str_radix(mode, 16).map_err(|_| bad(line))?;
            let is_dir = mode & 0o170_000 == 0o040_000;
            let num = |s: &str| s.parse::<u64>().map_err(|_| bad(line));
            blocks.insert(name.to_string(), num(b)?);
            out.insert(
                name.to_string(),
                Entry {
                    mode,
                    size: if is_dir { 0 } else { num(size)? },
                    nlink: if is_dir { 0 } else { num(nlink)? },
                    sha256: None,
                    target: None,
                    owner: Some((
                        uid.parse().map_err(|_| bad(line))?,
                        gid.parse().map_err(|_| bad(line))?,
                    )),
                    mtime: Some(mtime.parse().map_err(|_| bad(line))?),
                },
            );
        } else if let Some(rest) = line.strip_prefix("S|") {
            let mut it = rest.splitn(5, '|');
            let (Some(mode), Some(size), Some(nlink), Some(b), Some(name)) =
                (it.next(), it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad(line));
            };
            let mode = u32::from_str_radix(mode, 16).map_err(|_| bad(line))?;
            let is_dir = mode & 0o170_000 == 0o040_000;
            let size: u64 = size.parse().map_err(|_| bad(line))?;
            let nlink: u64 = nlink.parse().map_err(|_| bad(line))?;
            blocks.insert(name.to_string(), b.parse().map_err(|_| bad(line))?);
            out.insert(
                name.to_string(),
                Entry {
                    mode,
                    size: if is_dir { 0 } else { size },
                    nlink: if is_dir { 0 } else { nlink },
                    sha256: None,
                    target: None,
                    owner: None,
                    mtime: None,
                },
            );
        } else if let Some(rest) = line.strip_prefix("L|") {
            let (target, name) = rest.split_once('|').ok_or_else(|| bad(line))?;
            let e = out.get_mut(name).ok_or_else(|| bad(line))?;
            e.target = Some(target.to_string());
        } else if line.len() > 66
            && line.as_bytes()[64..66] == *b"  "
            && line[..64].bytes().all(|b| b.is_ascii_hexdigit())
        {
            let name = &line[66..];
            let e = out.get_mut(name).ok_or_else(|| bad(line))?;
            e.sha256 = Some(line[..64].to_string());
        } else if !line.trim().is_empty() {
            return Err(bad(line));
        }
    }
    Ok((out, blocks))
}

/// Differences between the host's and the guest's listings, one per line
/// (at most `max`); empty if they agree.
pub fn compare(host: &Listing, guest: &Listing, max: usize) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, h) in host {
        match guest.get(k) {
            None => diffs.push(format!("{k}: missing in the guest")),
            Some(g) if g != h => diffs.push(format!("{k}: host {h:?}, guest {g:?}")),
            Some(_) => {}
        }
    }
    for k in guest.keys().filter(|k| !host.contains_key(*k)) {
        if k != "./lost+found" {
            diffs.push(format!("{k}: only in the guest"));
        }
    }
    diffs.truncate(max);
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tree() {
        let a = crate::env::TempDir::new("tree-a").unwrap();
        let b = crate::env::TempDir::new("tree-b").unwrap();
        generate(a.path(), 7).unwrap();
        generate(b.path(), 7).unwrap();
        let (la, lb) = (
            host_listing(a.path()).unwrap(),
            host_listing(b.path()).unwrap(),
        );
        assert!(la.len() > 290, "{}", la.len());
        let strip = |l: &Listing| -> Vec<(String, Option<String>, u64)> {
            l.iter()
                .map(|(k, e)| (k.clone(), e.sha256.clone(), e.size))
                .collect()
        };
        assert_eq!(strip(&la), strip(&lb));
        assert_eq!(la["./links/hard-b"].nlink, 2);
        assert_eq!(la["./links/rel"].target.as_deref(), Some("../big.bin"));
        assert_eq!(la[HOLEY].size, HOLEY_LEN);
    }

    #[test]
    fn parses_what_busybox_prints() {
        let text = "S|81a4|3|1|8|./a b\nS|41ed|4096|2|8|./d\nS|a1ff|5|1|0|./d/l\n\
            ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ./a b\n\
            L|../x|./d/l\n";
        let (l, blocks) = parse_guest_listing(text).unwrap();
        assert_eq!(l["./a b"].mode, 0o100_644);
        assert_eq!(l["./a b"].sha256.as_deref().unwrap().len(), 64);
        assert_eq!(l["./d"].size, 0);
        assert_eq!(l["./d/l"].target.as_deref(), Some("../x"));
        assert_eq!(blocks["./a b"], 8);
        assert!(parse_guest_listing("garbage\n").is_err());
        let (l, _) = parse_guest_listing("F|21b6|0|1|0|0|6|1700000000|./dev/null\n").unwrap();
        assert_eq!(l["./dev/null"].owner, Some((0, 6)));
        assert_eq!(l["./dev/null"].mtime, Some(1_700_000_000));
    }

    #[test]
    fn compare_reports_each_difference() {
        let e = Entry {
            mode: 0o100_644,
            size: 1,
            nlink: 1,
            sha256: Some("00".into()),
            target: None,
            owner: None,
            mtime: None,
        };
        let host: Listing = [
            ("./a".to_string(), e.clone()),
            ("./b".to_string(), e.clone()),
        ]
        .into();
        let mut guest = host.clone();
        guest.remove("./b");
        guest.get_mut("./a").unwrap().sha256 = Some("11".into());
        guest.insert("./c".into(), e);
        let d = compare(&host, &guest, 10);
        assert_eq!(d.len(), 3, "{d:?}");
    }
}

//! `imgbuild inspect`: list an ext4 image's files with mode, owner and size,
//! read in-process with `ext4-view`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ext4_view::{Ext4, Ext4Error, FileType, Metadata};

/// Why an image cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The image has `meta_bg`, which `ext4-view` does not read.
    #[error(
        "cannot read ext4 image {image}: it has meta_bg (as mke2fs and imgbuild mkfs make filesystems of 1 KiB blocks from about 740 GiB, 2 KiB from 12 TiB, 4 KiB from 192 TiB), which inspect's ext4 reader (ext4-view) does not read; debugfs -R 'ls -l /' {image} does"
    )]
    MetaBg {
        /// The image.
        image: PathBuf,
    },
    /// The image cannot be opened as ext4.
    #[error("cannot read ext4 image {image}: {source}")]
    Load {
        /// The image.
        image: PathBuf,
        /// Why.
        source: Ext4Error,
    },
    /// A path inside the image cannot be read.
    #[error("{image}: {path}: {source}")]
    Path {
        /// The image.
        image: PathBuf,
        /// The path inside it.
        path: String,
        /// Why.
        source: Ext4Error,
    },
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the image.
    pub path: String,
    /// File type letter as in `ls -l` (`-`, `d`, `l`, `c`, `b`, `p`, `s`).
    pub kind: char,
    /// Permission bits.
    pub mode: u16,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Symlink target.
    pub target: Option<String>,
}

fn kind_letter(t: FileType) -> char {
    if t.is_dir() {
        'd'
    } else if t.is_symlink() {
        'l'
    } else if t.is_char_dev() {
        'c'
    } else if t.is_block_dev() {
        'b'
    } else if t.is_fifo() {
        'p'
    } else if t.is_socket() {
        's'
    } else {
        '-'
    }
}

fn type_bits(kind: char) -> u32 {
    match kind {
        'd' => 0o040000,
        'l' => 0o120000,
        'c' => 0o020000,
        'b' => 0o060000,
        'p' => 0o010000,
        's' => 0o140000,
        _ => 0o100000,
    }
}

/// `rwxr-xr-x` with setuid/setgid/sticky shown as `ls` does.
pub fn symbolic(mode: u16) -> String {
    let bit = |m: u16, c: char| if mode & m != 0 { c } else { '-' };
    let exec =
        |x: u16, special: u16, on: char, off: char| match (mode & x != 0, mode & special != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => 'x',
            (false, false) => '-',
        };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

impl Entry {
    fn from_meta(fs: &Ext4, path: &str, m: &Metadata) -> Entry {
        let kind = kind_letter(m.file_type());
        let target = if kind == 'l' {
            fs.read_link(path).ok().map(|t| t.display().to_string())
        } else {
            None
        };
        Entry {
            path: path.to_owned(),
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime: m.modified().seconds(),
            target,
        }
    }

    /// One line like `debugfs -R 'ls -l'`: octal mode with type, symbolic
    /// mode, uid, gid, size, mtime (UTC), name.
    pub fn line(&self, name: &str) -> String {
        let mut s = format!(
            "{:06o} {}{} {:>5} {:>5} {:>10} {} {}",
            type_bits(self.kind) | u32::from(self.mode),
            self.kind,
            symbolic(self.mode),
            self.uid,
            self.gid,
            self.size,
            utc(self.mtime),
            name
        );
        if let Some(t) = &self.target {
            let _ = write!(s, " -> {t}");
        }
        s
    }
}

/// `YYYY-MM-DD HH:MM` in UTC for seconds since the epoch.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `INCOMPAT_META_BG` in `s_feature_incompat`.
const INCOMPAT_META_BG: u32 = 0x10;

/// Whether `image` has an ext4 superblock with `meta_bg`.
fn has_meta_bg(image: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut sb = [0u8; 0x64];
    let read = std::fs::File::open(image).and_then(|f| f.read_exact_at(&mut sb, 1024));
    let magic = u16::from_le_bytes([sb[0x38], sb[0x39]]);
    let incompat = u32::from_le_bytes([sb[0x60], sb[0x61], sb[0x62], sb[0x63]]);
    read.is_ok() && magic == 0xEF53 && incompat & INCOMPAT_META_BG != 0
}

/// Lists `path` in `image`: a directory's entries (sorted; recursively if
/// asked), or the entry itself.
pub fn list(image: &Path, path: &str, recursive: bool) -> Result<Vec<Entry>, InspectError> {
    let fs = Ext4::load_from_path(image).map_err(|source| {
        let image = image.to_path_buf();
        match source {
            Ext4Error::Incompatible(_) if has_meta_bg(&image) => InspectError::MetaBg { image },
            source => InspectError::Load { image, source },
        }
    })?;
    let perr = |p: &str, source| InspectError::Path {
        image: image.to_path_buf(),
        path: p.to_owned(),
        source,
    };
    let meta = fs.symlink_metadata(path).map_err(|e| perr(path, e))?;
    let mut out = Vec::new();
    if !meta.is_dir() {
        out.push(Entry::from_meta(&fs, path, &meta));
        return Ok(out);
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut names = Vec::new();
        for e in fs.read_dir(dir.as_str()).map_err(|e| perr(&dir, e))? {
            let e = e.map_err(|e| perr(&dir, e))?;
            let name = e.file_name().display().to_string();
            if name == "." || name == ".." {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let p = if dir.ends_with('/') {
                format!("{dir}{name}")
            } else {
                format!("{dir}/{name}")
            };
            let m = fs.symlink_metadata(p.as_str()).map_err(|e| perr(&p, e))?;
            if recursive && m.is_dir() {
                subdirs.push(p.clone());
            }
            out.push(Entry::from_meta(&fs, &p, &m));
        }
        // Depth-first in name order.
        stack.extend(subdirs.into_iter().rev());
        if recursive {
            out.sort_by(|a, b| a.path.cmp(&b.path));
        }
    }
    Ok(out)
}

/// The listing as text, one line per entry (full paths when recursive).
pub fn render(entries: &[Entry], recursive: bool) -> String {
    let mut s = String::new();
    for e in entries {
        let name = if recursive {
            e.path.as_str()
        } else {
            e.path.rsplit('/').next().unwrap_or(&e.path)
        };
        s.push_str(&e.line(name));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic(0o755), "rwxr-xr-x");
        assert_eq!(symbolic(0o4755), "rwsr-xr-x");
        assert_eq!(symbolic(0o1777), "rwxrwxrwt");
        assert_eq!(symbolic(0o2640), "rw-r-S---");
    }

    #[test]
    fn line_format() {
        let e = Entry {
            path: "/bin/sh".into(),
            kind: 'l',
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: 7,
            mtime: 0,
            target: Some("busybox".into()),
        };
        assert_eq!(
            e.line("sh"),
            "120777 lrwxrwxrwx     0     0          7 1970-01-01 00:00 sh -> busybox"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_000_000), "1970-01-12 13:46");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_764_100_000), "2025-11-25 19:46");
        assert_eq!(utc(-60), "1969-12-31 23:59");
    }
}

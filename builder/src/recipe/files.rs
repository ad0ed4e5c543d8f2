//! Extra files of `[[rootfs.files]]`: destinations, modes and owners.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::inputs::resolve;
use super::raw::RawFile;
use super::{Diag, RecipeError};

/// What an extra file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Copy from a host path (absolute, resolved against the recipe's directory).
    Copy(PathBuf),
    /// A regular file with this content.
    Text(String),
    /// A directory.
    Directory,
    /// A symbolic link to this target.
    Symlink(String),
    /// A character device.
    CharDevice { major: u32, minor: u32 },
    /// A block device.
    BlockDevice { major: u32, minor: u32 },
    /// A named pipe.
    Fifo,
}

/// One extra file in the root image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Normalised absolute destination in the image.
    pub dest: String,
    /// What to put there.
    pub kind: FileKind,
    /// Permission bits (incl. setuid/setgid/sticky).
    pub mode: u16,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl FileKind {
    /// The mode used when the recipe gives none.
    pub fn default_mode(&self) -> u16 {
        match self {
            FileKind::Copy(_) | FileKind::Text(_) => 0o644,
            FileKind::Directory => 0o755,
            FileKind::Symlink(_) => 0o777,
            FileKind::CharDevice { .. } | FileKind::BlockDevice { .. } | FileKind::Fifo => 0o600,
        }
    }
}

/// Normalises an absolute image path: removes `.` and empty components,
/// resolves `..`, and refuses paths that are relative or escape the root.
pub fn normalise_dest(dest: &str) -> Result<String, String> {
    if !dest.starts_with('/') {
        return Err(format!(
            "`{dest}` must be an absolute path inside the image (start with /)"
        ));
    }
    if dest.contains('\0') {
        return Err(format!("`{dest}` contains a NUL byte"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in dest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{dest}` escapes the image root with `..`"));
                }
            }
            c if c.len() > 255 => {
                return Err(format!(
                    "`{dest}`: component `{c}` is longer than 255 bytes"
                ));
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Parses a mode: an octal string (`"0644"`, `"4755"`) or an integer (`0o644`).
pub fn parse_mode(v: &toml::Value) -> Result<u16, String> {
    let n = match v {
        toml::Value::String(s) => {
            let t = s.trim_start_matches("0o");
            u32::from_str_radix(t, 8)
                .map_err(|_| format!("`{s}` is not an octal mode like \"0644\""))?
        }
        toml::Value::Integer(i) => {
            u32::try_from(*i).map_err(|_| format!("mode {i} is negative"))?
        }
        other => {
            return Err(format!(
                "mode must be an octal string like \"0644\", not {}",
                other.type_str()
            ));
        }
    };
    if n > 0o7777 {
        return Err(format!(
            "mode {n:o} has bits beyond 07777 (only permission, setuid, setgid and sticky bits)"
        ));
    }
    Ok(n as u16)
}

/// Parses an owner: `root`, `uid`, `uid:gid` or `root:root`.
pub fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    fn id(part: &str, whole: &str) -> Result<u32, String> {
        match part {
            "root" => Ok(0),
            p => p.parse().map_err(|_| {
                format!(
                    "`{whole}` is not an owner: use \"root\", \"uid\" or \"uid:gid\" with numbers"
                )
            }),
        }
    }
    match s.split_once(':') {
        Some((u, g)) => Ok((id(u, s)?, id(g, s)?)),
        None => {
            let u = id(s, s)?;
            Ok((u, u))
        }
    }
}

/// Checks one `[[rootfs.files]]` entry (the `i`th).
pub(super) fn extra_file(
    d: &Diag,
    dir: &Path,
    f: &Spanned<RawFile>,
    i: usize,
) -> Result<ExtraFile, RecipeError> {
    let key = |k: &str| format!("rootfs.files[{i}].{k}");
    let f = f.get_ref();
    let dest =
        normalise_dest(f.dest.get_ref()).map_err(|m| d.at(&f.dest.span(), &key("dest"), m))?;
    let mut kinds: Vec<(std::ops::Range<usize>, &str, FileKind)> = Vec::new();
    if let Some(s) = &f.source {
        let p = resolve(dir, s.get_ref());
        if !p.exists() {
            return Err(d.at(
                &s.span(),
                &key("source"),
                format!(
                    "`{}` does not exist (paths are relative to the recipe file)",
                    p.display()
                ),
            ));
        }
        kinds.push((s.span(), "source", FileKind::Copy(p)));
    }
    if let Some(t) = &f.text {
        kinds.push((t.span(), "text", FileKind::Text(t.get_ref().clone())));
    }
    if let Some(b) = &f.directory {
        if *b.get_ref() {
            kinds.push((b.span(), "directory", FileKind::Directory));
        }
    }
    if let Some(s) = &f.symlink {
        if s.get_ref().is_empty() {
            return Err(d.at(&s.span(), &key("symlink"), "the link target is empty"));
        }
        kinds.push((s.span(), "symlink", FileKind::Symlink(s.get_ref().clone())));
    }
    if let Some(c) = &f.char_device {
        let v = c.get_ref();
        kinds.push((
            c.span(),
            "char_device",
            FileKind::CharDevice {
                major: v.major,
                minor: v.minor,
            },
        ));
    }
    if let Some(c) = &f.block_device {
        let v = c.get_ref();
        kinds.push((
            c.span(),
            "block_device",
            FileKind::BlockDevice {
                major: v.major,
                minor: v.minor,
            },
        ));
    }
    if let Some(b) = &f.fifo {
        if *b.get_ref() {
            kinds.push((b.span(), "fifo", FileKind::Fifo));
        }
    }
    let kind = match kinds.len() {
        1 => kinds.remove(0).2,
        0 => {
            return Err(d.at(&f.dest.span(), &key("dest"), format!(
                "`{dest}` needs one of: source, text, directory, symlink, char_device, block_device, fifo"
            )));
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|k| k.1).collect();
            return Err(d.at(
                &kinds[1].0,
                &key(kinds[1].1),
                format!(
                    "`{dest}` has several kinds ({}); give exactly one",
                    names.join(", ")
                ),
            ));
        }
    };
    if dest == "/" && kind != FileKind::Directory {
        return Err(d.at(
            &f.dest.span(),
            &key("dest"),
            "only a directory can be placed at /",
        ));
    }
    let mode = match &f.mode {
        None => kind.default_mode(),
        Some(m) => parse_mode(m.get_ref()).map_err(|e| d.at(&m.span(), &key("mode"), e))?,
    };
    let (uid, gid) = match &f.owner {
        None => (0, 0),
        Some(o) => parse_owner(o.get_ref()).map_err(|e| d.at(&o.span(), &key("owner"), e))?,
    };
    Ok(ExtraFile {
        dest,
        kind,
        mode,
        uid,
        gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_normalisation() {
        assert_eq!(normalise_dest("/etc//motd").unwrap(), "/etc/motd");
        assert_eq!(normalise_dest("/a/./b/../c/").unwrap(), "/a/c");
        assert_eq!(normalise_dest("/").unwrap(), "/");
        assert!(
            normalise_dest("/../etc/passwd")
                .unwrap_err()
                .contains("escapes")
        );
        assert!(
            normalise_dest("/a/../../b")
                .unwrap_err()
                .contains("escapes")
        );
        assert!(normalise_dest("etc/motd").unwrap_err().contains("absolute"));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode(&toml::Value::String("0644".into())), Ok(0o644));
        assert_eq!(parse_mode(&toml::Value::String("4755".into())), Ok(0o4755));
        assert_eq!(parse_mode(&toml::Value::Integer(0o1777)), Ok(0o1777));
        assert!(parse_mode(&toml::Value::String("0999".into())).is_err());
        assert!(parse_mode(&toml::Value::Integer(0o17777)).is_err());
        assert!(parse_mode(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn owners() {
        assert_eq!(parse_owner("root"), Ok((0, 0)));
        assert_eq!(parse_owner("root:root"), Ok((0, 0)));
        assert_eq!(parse_owner("1000:100"), Ok((1000, 100)));
        assert_eq!(parse_owner("7"), Ok((7, 7)));
        assert!(parse_owner("alice").is_err());
    }
}

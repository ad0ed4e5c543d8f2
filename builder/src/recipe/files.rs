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
    /// Permission bits (incl. setuid/setgid/sticky); for a copied
    /// directory, of every regular file in it. `None`: a copy keeps the
    /// source's, anything else gets [`FileKind::default_mode`].
    pub mode: Option<u16>,
    /// For a copied directory: the permission bits of every directory in
    /// it, the top one included (`None`: the source's).
    pub dir_mode: Option<u16>,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl FileKind {
    /// The mode used when the recipe gives none (a copy keeps its source's).
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

/// Parses a mode, an octal string (`"0644"`, `"4755"`), given for `key`
/// (`mode`, `dir_mode`) as `written` in the recipe.
///
/// A TOML integer is refused: `644` is decimal 644 (0o1204), and once parsed
/// it cannot be told from `0o1204`. The message gives the string to write,
/// read from how the number was written: its digits when they are all octal
/// (`644`, `0o644` → `"0644"`), else the value in octal (`999` → `"01747"`).
pub fn parse_mode(v: &toml::Value, written: &str, key: &str) -> Result<u16, String> {
    let n = match v {
        toml::Value::String(s) => {
            let t = s.trim_start_matches("0o");
            u32::from_str_radix(t, 8)
                .map_err(|_| format!("`{s}` is not an octal mode like \"0644\""))?
        }
        toml::Value::Integer(i) => {
            let written = match written.trim() {
                "" => i.to_string(),
                w => w.to_owned(),
            };
            return Err(match integer_mode_as_string(&written, *i) {
                Some(m) => format!(
                    "{key} {written} is a number; write the mode as an octal string: {key} = \"{m}\""
                ),
                None => format!(
                    "{key} {written} is a number; write the mode as an octal string such as {key} = \"0644\""
                ),
            });
        }
        other => {
            let not = match other {
                toml::Value::Float(f) => format!("the number {f}"),
                toml::Value::Boolean(b) => format!("`{b}`"),
                toml::Value::Array(_) => "a list".to_owned(),
                toml::Value::Table(_) => "a table".to_owned(),
                _ => format!("a {}", other.type_str()),
            };
            return Err(format!(
                "{key} is an octal string, not {not}: write {key} = \"0644\""
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

/// The octal string meant by an integer mode written `written` (value
/// `value`), if it is a mode at all.
fn integer_mode_as_string(written: &str, value: i64) -> Option<String> {
    let w = written.replace('_', "");
    let w = w.strip_prefix('+').unwrap_or(&w);
    let octal_digits = |d: &str| !d.is_empty() && d.bytes().all(|c| (b'0'..=b'7').contains(&c));
    let digits = match w.strip_prefix("0o") {
        Some(d) if octal_digits(d) => d.to_owned(),
        _ if octal_digits(w) => w.to_owned(),
        _ => format!("{:o}", u32::try_from(value).ok()?),
    };
    let n = u32::from_str_radix(&digits, 8)
        .ok()
        .filter(|n| *n <= 0o7777)?;
    Some(format!("0{n:03o}"))
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
        None => None,
        Some(m) => Some(
            parse_mode(m.get_ref(), d.text_at(&m.span()), "mode")
                .map_err(|e| d.at(&m.span(), &key("mode"), e))?,
        ),
    };
    let dir_mode = match &f.dir_mode {
        None => None,
        Some(m) => {
            if !matches!(&kind, FileKind::Copy(p) if p.is_dir()) {
                return Err(d.at(
                    &m.span(),
                    &key("dir_mode"),
                    "dir_mode is for a `source` that is a directory (the modes of the directories in the copied tree)",
                ));
            }
            Some(
                parse_mode(m.get_ref(), d.text_at(&m.span()), "dir_mode")
                    .map_err(|e| d.at(&m.span(), &key("dir_mode"), e))?,
            )
        }
    };
    let (uid, gid) = match &f.owner {
        None => (0, 0),
        Some(o) => parse_owner(o.get_ref()).map_err(|e| d.at(&o.span(), &key("owner"), e))?,
    };
    Ok(ExtraFile {
        dest,
        kind,
        mode,
        dir_mode,
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
        let mode = |v: toml::Value, written: &str| parse_mode(&v, written, "mode");
        let s = |m: &str| toml::Value::String(m.into());
        assert_eq!(mode(s("0644"), "\"0644\""), Ok(0o644));
        assert_eq!(mode(s("4755"), "\"4755\""), Ok(0o4755));
        assert!(mode(s("0999"), "\"0999\"").is_err());
        assert!(mode(s("17777"), "\"17777\"").is_err());
        assert_eq!(
            mode(toml::Value::Boolean(true), "true").unwrap_err(),
            "mode is an octal string, not `true`: write mode = \"0644\""
        );
        // Every integer is refused, with the string meant.
        for (value, written, want) in [
            (644, "644", "0644"),
            (0o644, "0o644", "0644"),
            (420, "420", "0420"),
            (0o4755, "0o4755", "04755"),
            (7, "7", "0007"),
            (999, "999", "01747"),
            (0x1ed, "0x1ed", "0755"),
            (1_777, "1_777", "01777"),
        ] {
            assert_eq!(
                mode(toml::Value::Integer(value), written).unwrap_err(),
                format!(
                    "mode {written} is a number; write the mode as an octal string: mode = \"{want}\""
                ),
                "{written}"
            );
        }
        for (value, written) in [(-1, "-1"), (99999, "99999"), (0o17777, "0o17777")] {
            let e = mode(toml::Value::Integer(value), written).unwrap_err();
            assert!(e.ends_with("string such as mode = \"0644\""), "{e}");
        }
        let e = parse_mode(&toml::Value::Integer(644), "644", "dir_mode").unwrap_err();
        assert!(e.ends_with("dir_mode = \"0644\""), "{e}");
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

//! Recipe errors: every one names the recipe file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in the recipe text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Loc {
    /// The line and column of byte offset `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Loc {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Loc { line, column }
    }
}

/// A recipe that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeError {
    /// The recipe file.
    pub file: PathBuf,
    /// Where in it (line 0 when the whole file is concerned).
    pub loc: Loc,
    /// The key concerned, dotted (`network.address`, `rootfs.files[1].dest`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.loc.line, self.key.is_empty()) {
            (0, true) => write!(f, "{file}: {}", self.message),
            (0, false) => write!(f, "{file}: key `{}`: {}", self.key, self.message),
            (_, true) => write!(
                f,
                "{file}:{}:{}: {}",
                self.loc.line, self.loc.column, self.message
            ),
            (_, false) => write!(
                f,
                "{file}:{}:{}: key `{}`: {}",
                self.loc.line, self.loc.column, self.key, self.message
            ),
        }
    }
}

/// Turns spans into located errors for one recipe file.
#[derive(Debug, Clone)]
pub struct Diag {
    file: PathBuf,
    text: String,
}

impl Diag {
    /// A diagnostic context for `file` whose contents are `text`.
    pub fn new(file: &Path, text: &str) -> Diag {
        Diag {
            file: file.to_path_buf(),
            text: text.to_owned(),
        }
    }

    /// The recipe file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The position of a span's start.
    pub fn loc(&self, span: &Range<usize>) -> Loc {
        Loc::of_offset(&self.text, span.start)
    }

    /// An error at `span` about `key`.
    pub fn at(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> RecipeError {
        self.at_loc(self.loc(span), key, message)
    }

    /// An error at a known location about `key`.
    pub fn at_loc(&self, loc: Loc, key: &str, message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: self.file.clone(),
            loc,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// An error about the whole file.
    pub fn whole(&self, message: impl Into<String>) -> RecipeError {
        self.at_loc(Loc::default(), "", message)
    }

    /// Converts a TOML parse or schema error, recovering the key from the text.
    pub fn from_toml(&self, err: &toml::de::Error) -> RecipeError {
        let message = err.message().trim().to_owned();
        match err.span() {
            Some(span) => {
                let key = self.key_at(span.start);
                self.at(&span, &key, message)
            }
            None => self.whole(message),
        }
    }

    /// Best-effort dotted key path for the byte offset `offset`: the enclosing
    /// `[table]` (with an index for `[[array]]` tables) and the key on its line.
    pub fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = &self.text[line_start..line_end];
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
        }
        let mut table = String::new();
        let mut counts: Vec<(String, usize)> = Vec::new();
        for l in self.text[..line_start].lines() {
            let t = l.trim();
            if let Some(rest) = t.strip_prefix("[[") {
                let name = rest.split("]]").next().unwrap_or("").trim().to_owned();
                let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        counts.push((name.clone(), 0));
                        0
                    }
                };
                table = format!("{name}[{n}]");
            } else if let Some(rest) = t.strip_prefix('[') {
                table = rest.split(']').next().unwrap_or("").trim().to_owned();
            }
        }
        let key = line
            .split_once('=')
            .filter(|(k, _)| line_start + k.len() >= offset || !k.contains('"'))
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        match (table.is_empty(), key.is_empty()) {
            (true, _) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loc_counts_lines_and_columns() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(Loc::of_offset(t, 0), Loc { line: 1, column: 1 });
        assert_eq!(Loc::of_offset(t, 6), Loc { line: 2, column: 1 });
        assert_eq!(Loc::of_offset(t, 11), Loc { line: 2, column: 6 });
    }

    #[test]
    fn key_at_finds_table_and_key() {
        let t =
            "[guest]\nname = \"x\"\n[[rootfs.files]]\ndest = \"/a\"\n[[rootfs.files]]\nmode = 7\n";
        let d = Diag::new(Path::new("r.toml"), t);
        assert_eq!(d.key_at(t.find("\"x\"").unwrap()), "guest.name");
        assert_eq!(d.key_at(t.find("7").unwrap()), "rootfs.files[1].mode");
        assert_eq!(d.key_at(t.find("dest").unwrap()), "rootfs.files[0].dest");
    }

    #[test]
    fn display_names_file_line_column_key() {
        let d = Diag::new(Path::new("r.toml"), "a\nbc = 1");
        let e = d.at(&(5..6), "x.bc", "bad");
        assert_eq!(e.to_string(), "r.toml:2:4: key `x.bc`: bad");
    }
}

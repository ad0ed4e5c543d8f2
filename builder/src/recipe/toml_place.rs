//! Where a byte offset stands in a recipe's TOML: the dotted key around it
//! (`rootfs.files[1].mode`, `inputs.kernel.package`), whether it is in a
//! table header or an array — a small scanner of TOML's structure, enough to
//! name the key a serde error is about.

/// Where an offset stands in the recipe's structure.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Place {
    /// The key's components; an entry of an array of tables carries its
    /// index (`["rootfs", "files[1]", "mode"]`).
    pub(super) path: Vec<String>,
    /// The offset is at a table header: `Some(true)` for `[[…]]`.
    pub(super) header: Option<bool>,
    /// The offset is at an item of an array value.
    pub(super) in_array: bool,
}

impl Place {
    /// The dotted key, `rootfs.files[1].mode`.
    pub(super) fn key(&self) -> String {
        self.path.join(".")
    }

    /// The key without array indices, `rootfs.files.mode`.
    pub(super) fn plain_key(&self) -> String {
        self.path
            .iter()
            .map(|c| strip_index(c))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The last key component as written on its line (`vcpus`).
    pub(super) fn leaf(&self) -> &str {
        self.path.last().map_or("", |c| strip_index(c))
    }

    /// The enclosing table's key (empty at the top level).
    pub(super) fn parent(&self) -> String {
        self.path[..self.path.len().saturating_sub(1)].join(".")
    }
}

pub(super) fn strip_index(component: &str) -> &str {
    match component.find('[') {
        Some(i) if component.ends_with(']') => &component[..i],
        _ => component,
    }
}

/// Splits a dotted TOML key (`a."b.c".d`) into its unquoted components.
pub(super) fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut cur).trim().to_owned()),
            (_, c) => cur.push(c),
        }
    }
    parts.push(cur.trim().to_owned());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A small scanner of TOML structure, enough to name the key at an offset:
/// table headers (counting `[[array]]` entries), keys, inline tables,
/// arrays, strings and comments.
pub(super) struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    offset: usize,
    /// Current index of every array of tables seen, by dotted name.
    arrays: Vec<(String, usize)>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips spaces and tabs, and newlines and comments when `lines`.
    fn skip_blank(&mut self, lines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'\n' if lines => self.i += 1,
                b'#' if lines => self.skip_line(),
                _ => break,
            }
        }
    }

    /// Skips to the next newline (not past it).
    fn skip_line(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n') {
            self.i += 1;
        }
    }

    /// Skips a string starting at the quote at `self.i`.
    fn skip_string(&mut self) {
        let q = self.b[self.i];
        let triple = self.b[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        while let Some(c) = self.peek() {
            if c == b'\\' && q == b'"' {
                self.i += 2;
            } else if c == q && (!triple || self.b[self.i..].starts_with(&[q, q, q])) {
                self.i += if triple { 3 } else { 1 };
                // A triple-quoted string may end with up to two more quotes.
                while triple && self.peek() == Some(q) {
                    self.i += 1;
                }
                return;
            } else if c == b'\n' && !triple {
                return;
            } else {
                self.i += 1;
            }
        }
    }

    /// Reads a key up to `=` (not consuming it); `None` if there is none.
    fn read_key(&mut self) -> Option<Vec<String>> {
        let start = self.i;
        while let Some(c) = self.peek() {
            match c {
                b'"' | b'\'' => self.skip_string(),
                b'=' => {
                    let key = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
                    return Some(split_key(&key));
                }
                b'\n' | b'}' | b',' | b'#' => return None,
                _ => self.i += 1,
            }
        }
        None
    }

    /// Reads the key at `self.i` without moving.
    fn key_ahead(&mut self) -> Vec<String> {
        let at = self.i;
        let k = self.read_key().unwrap_or_default();
        self.i = at;
        k
    }

    /// Handles the header at `self.i`; the table's path.
    fn header(&mut self) -> (Vec<String>, bool) {
        let double = self.b[self.i..].starts_with(b"[[");
        self.i += if double { 2 } else { 1 };
        let start = self.i;
        while let Some(c) = self.peek() {
            match c {
                b'"' | b'\'' => self.skip_string(),
                b']' | b'\n' => break,
                _ => self.i += 1,
            }
        }
        let name = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
        self.skip_line();
        let parts = split_key(&name);
        let full = parts.join(".");
        if double {
            match self.arrays.iter_mut().find(|(k, _)| *k == full) {
                Some((_, n)) => *n += 1,
                None => self.arrays.push((full.clone(), 0)),
            }
            // Arrays nested under this one start again for the new entry.
            let nested = format!("{full}.");
            self.arrays.retain(|(k, _)| !k.starts_with(&nested));
        }
        let path = (1..=parts.len())
            .map(|k| {
                let prefix = parts[..k].join(".");
                match self.arrays.iter().find(|(a, _)| *a == prefix) {
                    Some((_, n)) => format!("{}[{n}]", parts[k - 1]),
                    None => parts[k - 1].clone(),
                }
            })
            .collect();
        (path, double)
    }

    /// Walks a value; the place if `offset` is reached in it.
    fn value(&mut self, path: &mut Vec<String>, in_array: bool) -> Option<Place> {
        self.skip_blank(in_array);
        if self.i >= self.offset {
            return Some(at(path, in_array));
        }
        match self.peek()? {
            b'"' | b'\'' => self.skip_string(),
            b'[' => {
                self.i += 1;
                loop {
                    self.skip_blank(true);
                    if self.i >= self.offset {
                        return Some(at(path, true));
                    }
                    match self.peek()? {
                        b']' => {
                            self.i += 1;
                            break;
                        }
                        b',' => self.i += 1,
                        _ => {
                            if let Some(p) = self.value(path, true) {
                                return Some(p);
                            }
                        }
                    }
                }
            }
            b'{' => {
                self.i += 1;
                loop {
                    self.skip_blank(true);
                    if self.i >= self.offset {
                        let mut p = path.clone();
                        if self.peek().is_some_and(|c| !b"},".contains(&c)) {
                            p.extend(self.key_ahead());
                        }
                        return Some(at(&p, false));
                    }
                    match self.peek()? {
                        b'}' => {
                            self.i += 1;
                            break;
                        }
                        b',' => self.i += 1,
                        _ => {
                            let k = self.read_key()?;
                            self.i += 1;
                            let n = path.len();
                            path.extend(k);
                            let found = self.value(path, false);
                            path.truncate(n);
                            if found.is_some() {
                                return found;
                            }
                        }
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| !b",]}\n#".contains(&c) && c != b' ')
                {
                    self.i += 1;
                }
                if self.i > self.offset {
                    return Some(at(path, in_array));
                }
            }
        }
        None
    }
}

pub(super) fn at(path: &[String], in_array: bool) -> Place {
    Place {
        path: path.to_vec(),
        header: None,
        in_array,
    }
}

/// The place of byte offset `offset` in `text`.
pub(super) fn place(text: &str, offset: usize) -> Place {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        offset: offset.min(text.len()),
        arrays: Vec::new(),
    };
    let mut table: Vec<String> = Vec::new();
    loop {
        s.skip_blank(true);
        if s.i >= s.offset || s.peek().is_none() {
            if s.peek() == Some(b'[') {
                let (path, double) = s.header();
                return Place {
                    path,
                    header: Some(double),
                    in_array: false,
                };
            }
            let mut path = table.clone();
            path.extend(s.key_ahead());
            return at(&path, false);
        }
        if s.peek() == Some(b'[') {
            let (path, double) = s.header();
            // An offset inside the header (`[gust]` names `gust` at 1:2).
            if s.offset < s.i {
                return Place {
                    path,
                    header: Some(double),
                    in_array: false,
                };
            }
            table = path;
            continue;
        }
        let Some(k) = s.read_key() else {
            s.skip_line();
            continue;
        };
        s.i += 1;
        let mut path = table.clone();
        path.extend(k);
        if let Some(p) = s.value(&mut path, false) {
            return p;
        }
        s.skip_line();
    }
}

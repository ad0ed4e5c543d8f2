//! serde's error messages, taken apart and said again in the recipe's
//! words: what was found, what the key expects, and how to write it.

use super::toml_place::Place;

/// A serde error message, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SerdeError<'a> {
    /// `invalid type: {found}, expected {expected}`
    InvalidType { found: &'a str, expected: &'a str },
    /// `invalid value: {found}, expected {expected}`
    InvalidValue { found: &'a str, expected: &'a str },
    /// ``missing field `{0}` ``
    Missing(&'a str),
    /// ``unknown field `{field}`, expected one of `a`, `b` ``
    Unknown {
        field: &'a str,
        expected: Vec<&'a str>,
    },
    /// Anything else (TOML syntax errors are already in TOML's words).
    Other,
}

impl SerdeError<'_> {
    pub(super) fn parse(m: &str) -> SerdeError<'_> {
        let split = |rest: &'static str| {
            m.strip_prefix(rest)
                .and_then(|r| r.rsplit_once(", expected "))
        };
        if let Some((found, expected)) = split("invalid type: ") {
            return SerdeError::InvalidType { found, expected };
        }
        if let Some((found, expected)) = split("invalid value: ") {
            return SerdeError::InvalidValue { found, expected };
        }
        if let Some(f) = m
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            return SerdeError::Missing(f);
        }
        if let Some(rest) = m.strip_prefix("unknown field `") {
            if let Some((field, rest)) = rest.split_once('`') {
                let expected = rest.split('`').skip(1).step_by(2).collect();
                return SerdeError::Unknown { field, expected };
            }
        }
        SerdeError::Other
    }
}

/// What a value of the wrong type was.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Found {
    Str(String),
    /// An integer, as written.
    Int(String),
    /// A float, as written.
    Float(String),
    Bool(bool),
    /// An array; its items when they could be read.
    List(Vec<toml::Value>),
    /// A table (`inline` when written `{ … }` on the key's line).
    Table,
    /// A date or time, as written.
    Date(String),
    Other(String),
}

impl Found {
    /// From serde's description of the value, and its recipe text.
    pub(super) fn parse(serde: &str, written: &str, header: Option<bool>) -> Found {
        let written = written.trim();
        let value = if header.is_some() {
            None
        } else {
            format!("v = {written}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
        };
        let ticked = |s: &str| s.split('`').nth(1).unwrap_or(written).to_owned();
        match value {
            Some(toml::Value::String(s)) => return Found::Str(s),
            Some(toml::Value::Array(a)) => return Found::List(a),
            Some(toml::Value::Datetime(d)) => return Found::Date(d.to_string()),
            Some(toml::Value::Table(_)) => return Found::Table,
            _ => {}
        }
        if header == Some(true) {
            return Found::List(Vec::new());
        }
        match serde.split_once(' ').map_or(serde, |(k, _)| k) {
            "string" => Found::Str(
                serde
                    .strip_prefix("string ")
                    .unwrap_or(serde)
                    .trim_matches('"')
                    .to_owned(),
            ),
            "integer" => Found::Int(ticked(serde)),
            "floating" => Found::Float(ticked(serde)),
            "boolean" => Found::Bool(serde.contains("true")),
            "sequence" => Found::List(Vec::new()),
            "map" => Found::Table,
            _ => Found::Other(serde.to_owned()),
        }
    }

    /// `a string`, `a number`, … for "X is a Y, not Z".
    fn a(&self) -> String {
        match self {
            Found::Str(_) => "a string".into(),
            Found::Int(_) | Found::Float(_) => "a number".into(),
            Found::Bool(b) => format!("`{b}`"),
            Found::List(_) => "a list".into(),
            Found::Table => "a table".into(),
            Found::Date(_) => "a date".into(),
            Found::Other(s) => s.clone(),
        }
    }

    /// The value as TOML text, when it is a scalar.
    fn scalar_text(&self) -> Option<String> {
        match self {
            Found::Int(s) | Found::Float(s) | Found::Date(s) => Some(s.clone()),
            Found::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// What a key wants, from serde's `expected …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expected {
    /// A whole number in this range.
    Whole(i128, i128),
    Text,
    Bool,
    List,
    /// `{ major = …, minor = … }`
    Device,
    /// A table (a section, or `[init.status]`).
    Table,
    /// `"pkg"`, `"pkg=version"` or an input table.
    Input,
    Other(String),
}

impl Expected {
    pub(super) fn parse(e: &str) -> Expected {
        let range = |bits: u32, signed: bool| {
            if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            }
        };
        let int = |t: &str| -> Option<(u32, bool)> {
            let (signed, bits) = match t.split_at_checked(1)? {
                ("i", b) => (true, b),
                ("u", b) => (false, b),
                _ => return None,
            };
            let bits = match bits {
                "size" => 64,
                b => b.parse().ok().filter(|b| [8, 16, 32, 64].contains(b))?,
            };
            Some((bits, signed))
        };
        if let Some((bits, signed)) = int(e) {
            let (lo, hi) = range(bits, signed);
            return Expected::Whole(lo, hi);
        }
        match e {
            "a string" | "a borrowed string" | "a character" => Expected::Text,
            "a boolean" => Expected::Bool,
            "a sequence" => Expected::List,
            "struct RawDevice" => Expected::Device,
            _ if e == super::raw::INPUT_EXPECTING => Expected::Input,
            _ if e.starts_with("struct ") || e == "a map" => Expected::Table,
            _ => Expected::Other(e.to_owned()),
        }
    }
}

/// The arrays of tables of the recipe, with what one entry is called.
const TABLE_LISTS: [(&str, &str); 2] = [("rootfs.files", "file"), ("init.services", "service")];

/// "`{subject}` is {what}" for a value of the wrong type or range.
pub(super) fn wrong_type(place: &Place, found: &Found, expected: &Expected) -> String {
    let subject = place.key();
    let leaf = place.leaf();
    let not = found.a();
    if place.in_array && !matches!(expected, Expected::List) {
        let what = match expected {
            Expected::Text => "strings",
            Expected::Whole(..) => "whole numbers",
            Expected::Bool => "true or false",
            _ => "tables",
        };
        return match (expected, found.scalar_text()) {
            (Expected::Text, Some(t)) => {
                format!("{subject} is a list of {what}: write {t} as \"{t}\"")
            }
            _ => format!("{subject} is a list of {what}; this item is {not}"),
        };
    }
    match expected {
        Expected::Whole(lo, hi) => match found {
            Found::Str(s) => match s.trim().parse::<i128>() {
                Ok(n) if (*lo..=*hi).contains(&n) => {
                    format!("{subject} is a whole number: write {leaf} = {n} (without quotes)")
                }
                _ => {
                    let digits: String =
                        s.trim().chars().take_while(char::is_ascii_digit).collect();
                    let n = if digits.is_empty() {
                        "1".to_owned()
                    } else {
                        digits
                    };
                    format!("{subject} is a whole number, not a string: write {leaf} = {n}")
                }
            },
            Found::Int(n) if *hi == i128::from(i64::MAX) => {
                format!("`{n}` is too large for {subject}")
            }
            Found::Int(n) => {
                format!("`{n}` is out of range: {subject} is a whole number from {lo} to {hi}")
            }
            Found::Float(f) => {
                let whole = f.split(['.', 'e', 'E']).next().unwrap_or("1");
                format!("{subject} is a whole number, not {f}: write {leaf} = {whole}")
            }
            _ => format!("{subject} is a whole number, not {not}: write e.g. {leaf} = 1"),
        },
        Expected::Text => match (found, found.scalar_text()) {
            (_, Some(t)) => format!("{subject} is a string, not {not}: write {leaf} = \"{t}\""),
            (Found::List(items), _) if items.len() == 1 && items[0].is_str() => format!(
                "{subject} is a string, not a list: write {leaf} = \"{}\"",
                items[0].as_str().unwrap_or_default()
            ),
            _ => format!("{subject} is a string, not {not}: write {leaf} = \"…\""),
        },
        Expected::Bool => {
            let word = match found {
                Found::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Some(true),
                    "false" | "no" | "off" | "0" => Some(false),
                    _ => None,
                },
                Found::Int(n) if n == "1" || n == "0" => Some(n == "1"),
                _ => None,
            };
            match word {
                Some(b) => {
                    format!("{subject} is true or false: write {leaf} = {b} (without quotes)")
                }
                None => format!(
                    "{subject} is true or false, not {not}: write {leaf} = true or {leaf} = false"
                ),
            }
        }
        Expected::List => {
            let plain = place.plain_key();
            if let Some((_, noun)) = TABLE_LISTS.iter().find(|(k, _)| *k == plain) {
                let not = match found {
                    Found::Table => String::new(),
                    _ => format!(", not {not}"),
                };
                return format!(
                    "{plain} is a list of tables{not}: write [[{plain}]] (double brackets) for each {noun}"
                );
            }
            match found {
                Found::Str(s) => {
                    let items: Vec<String> = if leaf == "command" {
                        s.split_whitespace().map(|w| format!("{w:?}")).collect()
                    } else {
                        vec![format!("{s:?}")]
                    };
                    format!("{subject} is a list: write {leaf} = [{}]", items.join(", "))
                }
                _ => format!("{subject} is a list, not {not}: write {leaf} = [\"…\", \"…\"]"),
            }
        }
        Expected::Device => {
            let (major, minor) = match found {
                Found::Str(s) => s.split_once(':').and_then(|(a, b)| {
                    Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
                }),
                _ => None,
            }
            .unwrap_or(if leaf == "block_device" {
                (8, 0)
            } else {
                (5, 1)
            });
            format!(
                "{subject} is a table, not {not}: write {leaf} = {{ major = {major}, minor = {minor} }}"
            )
        }
        Expected::Table => {
            let table = place.plain_key();
            match found {
                Found::List(_) => {
                    format!("{table} is a table, not a list: write [{table}] (single brackets)")
                }
                _ => format!(
                    "{table} is a table, not {not}: write [{table}] and its keys on the lines below it"
                ),
            }
        }
        Expected::Input => format!(
            "{subject} is a package or a path, not {not}: write {leaf} = \"pkg\", \"pkg=version\", {{ package = \"pkg\", version = \"v\" }} or {{ path = \"…\" }}"
        ),
        Expected::Other(e) => format!("{subject} is {e}, not {not}"),
    }
}

/// The key and message for a required key that is not there.
pub(super) fn missing(place: &Place, field: &str) -> (String, String) {
    // Only the recipe itself requires `guest`; its span is the whole file.
    if field == "guest" {
        return (
            "guest".into(),
            "the recipe has no [guest] table, which is required: add [guest] with at least name = \"…\""
                .into(),
        );
    }
    let container = place.key();
    let plain = place.plain_key();
    let key = format!("{container}.{field}");
    let message = match place.header {
        Some(true) => format!("this [[{plain}]] entry has no `{field}`, which is required"),
        Some(false) => format!("[{plain}] has no `{field}`, which is required"),
        None => format!("{container} has no `{field}`, which is required"),
    };
    (key, message)
}

/// The message for a key the recipe does not have.
pub(super) fn unknown(place: &Place, field: &str, expected: &[&str]) -> String {
    let parent = place.parent();
    let within = if parent.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in {parent}")
    };
    let mut m = match expected {
        [] => format!("unknown key `{field}` {within}, which has no keys"),
        [one] => format!("unknown key `{field}` {within}; expected {one}"),
        [a, b] => format!("unknown key `{field}` {within}; expected {a} or {b}"),
        all => format!(
            "unknown key `{field}` {within}; expected one of {}",
            all.join(", ")
        ),
    };
    if let Some(c) = closest(field, expected) {
        m.push_str(&format!(" (did you mean `{c}`?)"));
    } else if !parent.is_empty() && SECTIONS.contains(&field) {
        m.push_str(&format!(
            " (`{field}` is a section: write [{field}] on a line of its own, after the keys of {parent})"
        ));
    }
    m
}

/// The recipe's top-level tables.
const SECTIONS: [&str; 7] = [
    "guest", "inputs", "rootfs", "modules", "network", "xen", "init",
];

/// The name in `options` closest to `name`, if it is close enough to be a
/// slip (at most two edits: a missing, extra, wrong or swapped letter).
pub(super) fn closest<'a>(name: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(name, o), *o))
        .filter(|(d, o)| *d <= 2 && *d < name.len().max(o.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Optimal-string-alignment distance (Levenshtein plus transpositions).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names_only_slips() {
        let keys = ["name", "memory", "vcpus", "hostname"];
        assert_eq!(closest("memroy", &keys), Some("memory"));
        assert_eq!(closest("nmae", &keys), Some("name"));
        assert_eq!(closest("vcpu", &keys), Some("vcpus"));
        assert_eq!(closest("cpus", &keys), Some("vcpus"));
        assert_eq!(closest("size", &keys), None);
        assert_eq!(closest("x", &["y"]), None);
    }
}

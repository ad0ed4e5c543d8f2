//! A package's `control` file (deb-control(5)): `Field: value` lines,
//! continuation lines starting with a space, and the `Depends:` syntax
//! `a (>= 1), b | c:any`.

/// The fields of one control paragraph, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// (field name, value); continuation lines are joined with `\n`.
    pub fields: Vec<(String, String)>,
}

/// One alternative of a dependency: `name (op version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Package name (architecture qualifier such as `:any` removed).
    pub name: String,
    /// Version relation (`=`, `>=`, `<<`, …) and version, if any.
    pub version: Option<(String, String)>,
}

impl Control {
    /// Parses the first paragraph of a control file. Lines that are neither
    /// fields nor continuations are ignored (they cannot occur in a valid file).
    pub fn parse(text: &str) -> Control {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Control { fields }
    }

    /// The value of `field` (case-insensitive, as in Debian).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }

    /// `Package:`.
    pub fn package(&self) -> Option<&str> {
        self.get("Package")
    }

    /// `Version:`.
    pub fn version(&self) -> Option<&str> {
        self.get("Version")
    }

    /// `Depends:` (plus `Pre-Depends:` first): each entry a list of alternatives.
    pub fn depends(&self) -> Vec<Vec<Dependency>> {
        ["Pre-Depends", "Depends"]
            .iter()
            .filter_map(|f| self.get(f))
            .flat_map(parse_relations)
            .collect()
    }
}

/// Parses a relationship field: `a (>= 1), b | c:any [amd64]`.
pub fn parse_relations(value: &str) -> Vec<Vec<Dependency>> {
    value
        .split(',')
        .map(|entry| entry.split('|').filter_map(parse_one).collect::<Vec<_>>())
        .filter(|alts| !alts.is_empty())
        .collect()
}

fn parse_one(alt: &str) -> Option<Dependency> {
    let alt = alt.trim();
    let end = alt.find([' ', '(', '[', '<']).unwrap_or(alt.len());
    let name = alt.get(..end)?.trim();
    let name = name.split(':').next().unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let version = alt.find('(').and_then(|open| {
        let inner = alt.get(open + 1..)?;
        let inner = inner.get(..inner.find(')')?)?.trim();
        let split = inner
            .find(|c: char| !matches!(c, '<' | '>' | '='))
            .unwrap_or(inner.len());
        let (op, ver) = inner.split_at(split);
        Some((op.trim().to_owned(), ver.trim().to_owned()))
    });
    Some(Dependency {
        name: name.to_owned(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROL: &str = "Package: linux-image-amd64\n\
Source: linux-signed-amd64 (6.1.192+2)\n\
Version: 6.1.192-2\n\
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n\
Pre-Depends: dpkg (>= 1.17)\n\
Description: Linux for 64-bit PCs (meta-package)\n \
This package depends on the latest Linux kernel\n .\n \
and modules.\n";

    #[test]
    fn fields_and_continuations() {
        let c = Control::parse(CONTROL);
        assert_eq!(c.package(), Some("linux-image-amd64"));
        assert_eq!(c.version(), Some("6.1.192-2"));
        assert_eq!(c.get("version"), Some("6.1.192-2"));
        assert_eq!(
            c.get("Description"),
            Some(
                "Linux for 64-bit PCs (meta-package)\nThis package depends on the latest Linux kernel\n.\nand modules."
            )
        );
        let d = c.depends();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0][0].name, "dpkg");
        assert_eq!(
            d[1][0],
            Dependency {
                name: "linux-image-6.1.0-56-amd64".into(),
                version: Some(("=".into(), "6.1.192-2".into()))
            }
        );
    }

    #[test]
    fn relations_syntax() {
        let r = parse_relations("libc6 (>= 2.34), foo:any | bar [amd64] (<< 2), , baz");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0][0].version, Some((">=".into(), "2.34".into())));
        assert_eq!(r[1][0].name, "foo");
        assert_eq!(r[1][1].name, "bar");
        assert_eq!(r[1][1].version, Some(("<<".into(), "2".into())));
        assert_eq!(r[2][0].name, "baz");
        assert_eq!(r[2][0].version, None);
    }
}

//! A Debian package named by the user: `name` or `name=version`.

use std::fmt;
use std::str::FromStr;

/// A package to fetch: a name and optionally an exact version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageSpec {
    /// Package name, e.g. `busybox-static`.
    pub name: String,
    /// Exact version, e.g. `1:1.35.0-4+deb12u1+b1`; `None` means the candidate
    /// apt would install (or whatever version is already cached).
    pub version: Option<String>,
}

/// A package spec does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The name is empty or has characters Debian does not allow.
    #[error(
        "invalid package name {0:?} (Debian names are lower-case letters, digits and + - . , at least two characters, starting with a letter or digit)"
    )]
    BadName(String),
    /// The version after `=` is empty or has characters Debian does not allow.
    #[error("invalid version {version:?} for package {name:?}")]
    BadVersion {
        /// The package.
        name: String,
        /// The offending version.
        version: String,
    },
}

impl PackageSpec {
    /// Parses `name` or `name=version`.
    pub fn parse(s: &str) -> Result<PackageSpec, SpecError> {
        let s = s.trim();
        let (name, version) = match s.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (s, None),
        };
        let name_ok = name.len() >= 2
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !name_ok {
            return Err(SpecError::BadName(name.to_owned()));
        }
        if let Some(v) = version {
            let ok = v.bytes().next().is_some_and(|b| b.is_ascii_digit())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".+-~:".contains(&b));
            if !ok {
                return Err(SpecError::BadVersion {
                    name: name.to_owned(),
                    version: v.to_owned(),
                });
            }
        }
        Ok(PackageSpec {
            name: name.to_owned(),
            version: version.map(str::to_owned),
        })
    }

    /// The argument for `apt-get download`: `name` or `name=version`.
    pub fn apt_arg(&self) -> String {
        self.to_string()
    }

    /// True if a cached `.deb` file name (`name_version_arch.deb`, with `:`
    /// written `%3a` as apt does) is this package, at this spec's version if
    /// one is given. Returns the file's version when it matches.
    pub fn matches_file(&self, file_name: &str) -> Option<String> {
        let (name, version, _arch) = parse_deb_file_name(file_name)?;
        if name != self.name {
            return None;
        }
        match &self.version {
            Some(v) if *v != version => None,
            _ => Some(version),
        }
    }
}

/// Splits apt's `.deb` file name `name_version_arch.deb` into its parts,
/// decoding `%3a` (`:`) in the version.
pub fn parse_deb_file_name(file_name: &str) -> Option<(String, String, String)> {
    let stem = file_name.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let (name, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() || version.is_empty() {
        return None;
    }
    let version = version.replace("%3a", ":").replace("%3A", ":");
    Some((name.to_owned(), version, arch.to_owned()))
}

impl FromStr for PackageSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageSpec::parse(s)
    }
}

impl fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}={}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_versions() {
        let s = PackageSpec::parse("busybox-static").unwrap();
        assert_eq!(s.name, "busybox-static");
        assert_eq!(s.version, None);
        let s: PackageSpec = "busybox-static=1:1.35.0-4+deb12u1+b1".parse().unwrap();
        assert_eq!(s.version.as_deref(), Some("1:1.35.0-4+deb12u1+b1"));
        assert_eq!(s.apt_arg(), "busybox-static=1:1.35.0-4+deb12u1+b1");
        assert_eq!(
            PackageSpec::parse("Busybox"),
            Err(SpecError::BadName("Busybox".into()))
        );
        assert!(PackageSpec::parse("").is_err());
        assert!(PackageSpec::parse("a b").is_err());
        assert!(PackageSpec::parse("x; rm -rf /").is_err());
        let err = PackageSpec::parse("busybox=").unwrap_err();
        assert!(err.to_string().contains("busybox"), "{err}");
        assert!(PackageSpec::parse("busybox=1.0 x").is_err());
    }

    #[test]
    fn matches_cached_files() {
        let any = PackageSpec::parse("busybox-static").unwrap();
        let pinned = PackageSpec::parse("busybox-static=1:1.35.0-4+deb12u1+b1").unwrap();
        let file = "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb";
        assert_eq!(
            any.matches_file(file).as_deref(),
            Some("1:1.35.0-4+deb12u1+b1")
        );
        assert!(pinned.matches_file(file).is_some());
        assert!(
            pinned
                .matches_file("busybox-static_1%3a1.30_amd64.deb")
                .is_none()
        );
        assert!(any.matches_file("busybox_1%3a1.35.0-4_amd64.deb").is_none());
        assert!(
            any.matches_file("busybox-static_1.0_amd64.deb.part")
                .is_none()
        );
    }
}

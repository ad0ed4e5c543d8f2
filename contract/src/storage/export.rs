//! The name of an NBD export, restricted so it can be part of a path.

use std::fmt;
use std::str::FromStr;

use crate::net::ValueError;

/// The longest export name we accept, bytes.
pub const MAX_LEN: usize = 64;

/// An NBD export name: 1 to [`MAX_LEN`] of `A-Z a-z 0-9 . _ -`.
///
/// The NBD protocol allows any UTF-8 string of up to 4096 bytes; we take
/// far fewer so the name can be part of the runner's link
/// (`/run/imgrun/nbd/<host>_<port>_<export>`, see
/// [`super::Storage::xl_target`]) and of an `nbd-client -N` argument
/// without quoting. Case is kept: export names are case sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbdExport(String);

impl NbdExport {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NbdExport {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<NbdExport, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(NbdExport(s.to_owned()))
        } else {
            Err(ValueError(format!(
                "`{s}` is not an NBD export name we accept: 1-{MAX_LEN} of A-Z a-z 0-9 . _ -"
            )))
        }
    }
}

impl fmt::Display for NbdExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NbdExport {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["busybox", "Disk_1.img", "a", "-", &"x".repeat(MAX_LEN)] {
            assert_eq!(ok.parse::<NbdExport>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "a/b",
            "a b",
            "a:b",
            "é",
            "a,b",
            &"x".repeat(MAX_LEN + 1),
        ] {
            let e = bad.parse::<NbdExport>().unwrap_err().0;
            assert!(e.contains("not an NBD export name"), "{bad}: {e}");
        }
    }
}

//! The guest's host name, one rule for the recipe (`guest.hostname`, or the
//! guest name it defaults to), `init.conf`, `ip=` and the manifest.
//!
//! The rule is the one Linux and busybox live by, a little stricter where
//! the strictness costs nothing: 1 to 64 bytes (the kernel's limit), labels
//! separated by dots, each label 1 to 63 of letters, digits, `-` and `_`,
//! not starting or ending with `-`. The underscore is not valid in a DNS
//! name (RFC 1123) but is in host names people use (`web_01`), and the
//! kernel, `hostname` and the init accept it, so we do too; a guest that
//! must be resolvable by DNS should not use one.

use std::fmt;
use std::str::FromStr;

use crate::net::ValueError;

/// The kernel's limit on a host name (`__NEW_UTS_LEN`).
pub const MAX_LEN: usize = 64;

/// A host name that follows the rule above.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `h` breaks the rule, if it does.
fn problem(h: &str) -> Option<String> {
    if h.is_empty() {
        return Some("it is empty".into());
    }
    if h.len() > MAX_LEN {
        return Some(format!("it is {} bytes; at most {MAX_LEN}", h.len()));
    }
    for label in h.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (a leading, trailing or double dot)".into());
        }
        if label.len() > 63 {
            return Some(format!("label `{label}` is longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!(
                "{c:?} is not allowed (letters, digits, '-', '_' and '.')"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label `{label}` starts or ends with '-'"));
        }
    }
    None
}

impl FromStr for Hostname {
    type Err = ValueError;

    fn from_str(h: &str) -> Result<Hostname, ValueError> {
        match problem(h) {
            None => Ok(Hostname(h.to_owned())),
            Some(why) => Err(ValueError(format!("`{h}` is not a valid hostname: {why}"))),
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Hostname {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        // The two that used to disagree between the recipe and the init:
        // a default hostname from the guest name `my_guest.v2`, and
        // `hostname = "web_01"`. Both are accepted, by every program.
        for ok in [
            "busybox",
            "my_guest.v2",
            "web_01",
            "e2e-guest",
            "a",
            "host.example.org",
            "_svc",
            &"x".repeat(63),
        ] {
            assert_eq!(ok.parse::<Hostname>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a.", "empty label"),
            ("-a", "starts or ends with '-'"),
            ("a-.b", "starts or ends with '-'"),
            ("has space", "' ' is not allowed"),
            ("a:b", "':' is not allowed"),
            ("é", "'é' is not allowed"),
        ] {
            let e = bad.parse::<Hostname>().unwrap_err().0;
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                e.starts_with(&format!("`{bad}` is not a valid hostname")),
                "{e}"
            );
        }
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(30));
        assert!(
            long.parse::<Hostname>()
                .unwrap_err()
                .0
                .contains("at most 64")
        );
        assert!(
            "x".repeat(64)
                .parse::<Hostname>()
                .unwrap_err()
                .0
                .contains("longer than 63")
        );
    }
}

//! iSCSI names (RFC 3720 §3.2.6, RFC 3722): the `iqn.` form and the two
//! hex forms, as an initiator and a target agree on them.

use std::fmt;
use std::str::FromStr;

use crate::net::ValueError;

/// The longest iSCSI name, bytes (RFC 3720 §3.2.6.1).
pub const MAX_LEN: usize = 223;

/// An iSCSI name, one of:
///
/// - `iqn.YYYY-MM.<reversed domain>[:<anything>]`, e.g.
///   `iqn.2026-12.org.imgbuild:busybox`: a year and month when the naming
///   authority owned the domain, the domain's labels reversed, then an
///   optional `:` and a name the authority chose;
/// - `eui.` and 16 hex digits (an EUI-64);
/// - `naa.` and 16 or 32 hex digits (a T11 NAA identifier, RFC 3980).
///
/// Kept as RFC 3722's stringprep profile would leave it: lower case (so
/// `IQN.2026-12.ORG.X` and `iqn.2026-12.org.x` are the same name, written
/// the second way; the target must advertise it that way too, since the
/// name is part of the host's `/dev/disk/by-path` link). The characters are
/// limited to ASCII letters, digits, `-`, `.` and `:` — RFC 3722 also allows
/// other Unicode, which we refuse — so a name never holds a comma, a quote
/// or a space and can stand inside an xl.cfg disk spec and a path. At most
/// [`MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iqn(String);

impl Iqn {
    /// The name, lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `n` (already lower case) is not an iSCSI name, if it is not.
fn problem(n: &str) -> Option<String> {
    if n.len() > MAX_LEN {
        return Some(format!("it is {} bytes; at most {MAX_LEN}", n.len()));
    }
    if let Some(c) = n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-.:".contains(*c)))
    {
        return Some(format!(
            "{c:?} is not allowed (letters, digits, '-', '.' and ':')"
        ));
    }
    if let Some(hex) = n.strip_prefix("eui.") {
        return hex_problem(hex, &[16]);
    }
    if let Some(hex) = n.strip_prefix("naa.") {
        return hex_problem(hex, &[16, 32]);
    }
    let Some(rest) = n.strip_prefix("iqn.") else {
        return Some("it starts with none of `iqn.`, `eui.` and `naa.`".into());
    };
    let (authority, _suffix) = rest.split_once(':').unwrap_or((rest, ""));
    let (date, domain) = authority.split_once('.').unwrap_or((authority, ""));
    if let Some(why) = date_problem(date) {
        return Some(why);
    }
    if domain.is_empty() {
        return Some("the reversed domain name after the date is missing".into());
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Some("the reversed domain name has an empty label".into());
        }
        if label.contains(':') || label.len() > 63 {
            return Some(format!("`{label}` is not a domain name label"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("domain label `{label}` starts or ends with '-'"));
        }
    }
    None
}

/// Why `date` is not `YYYY-MM`, if it is not.
fn date_problem(date: &str) -> Option<String> {
    let ok = match date.split_once('-') {
        Some((y, m)) => {
            y.len() == 4
                && m.len() == 2
                && y.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit())
                && matches!(m.parse::<u8>(), Ok(1..=12))
        }
        None => false,
    };
    (!ok).then(|| format!("`{date}` is not a date: expected `iqn.YYYY-MM.`, e.g. iqn.2026-12."))
}

/// Why `hex` is not hex digits of one of the `lens`, if it is not.
fn hex_problem(hex: &str, lens: &[usize]) -> Option<String> {
    let ok = lens.contains(&hex.len()) && hex.bytes().all(|c| c.is_ascii_hexdigit());
    let lens: Vec<String> = lens.iter().map(ToString::to_string).collect();
    (!ok).then(|| format!("expected {} hex digits after the prefix", lens.join(" or ")))
}

impl FromStr for Iqn {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Iqn, ValueError> {
        let n = s.to_ascii_lowercase();
        match problem(&n) {
            None => Ok(Iqn(n)),
            Some(why) => Err(ValueError(format!(
                "`{s}` is not an iSCSI name: {why} (e.g. iqn.2026-12.org.example:disk1)"
            ))),
        }
    }
}

impl fmt::Display for Iqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Iqn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_lower_cased() {
        for ok in [
            "iqn.2026-12.org.imgbuild:busybox",
            "iqn.2001-04.com.example",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "iqn.2005-10.org.freenas.ctl:tank.vm-01",
            "eui.02004567a425678d",
            "naa.52004567ba64678d",
            "naa.60014055f5a2c6a8f5a2c6a8f5a2c6a8",
        ] {
            assert_eq!(ok.parse::<Iqn>().unwrap().as_str(), ok);
        }
        let i: Iqn = "IQN.2026-12.Org.ImgBuild:BusyBox".parse().unwrap();
        assert_eq!(i.to_string(), "iqn.2026-12.org.imgbuild:busybox");
        let e: Iqn = "eui.02004567A425678D".parse().unwrap();
        assert_eq!(e.as_str(), "eui.02004567a425678d");
    }

    #[test]
    fn refused_with_the_reason() {
        for (bad, why) in [
            ("", "starts with none"),
            ("iqn2026-12.org.x", "starts with none"),
            ("iqn.2026-13.org.x", "not a date"),
            ("iqn.2026-00.org.x", "not a date"),
            ("iqn.26-12.org.x", "not a date"),
            ("iqn.2026-1.org.x", "not a date"),
            ("iqn.2026-12", "domain name after the date is missing"),
            ("iqn.2026-12.:x", "domain name after the date is missing"),
            ("iqn.2026-12.org..x", "empty label"),
            ("iqn.2026-12.org.-x", "starts or ends with '-'"),
            ("iqn.2026-12.org.x:a b", "' ' is not allowed"),
            ("iqn.2026-12.org.x:a,b", "',' is not allowed"),
            ("iqn.2026-12.org.x:'a'", "'\\'' is not allowed"),
            ("iqn.2026-12.org.x:a\"", "'\"' is not allowed"),
            ("iqn.2026-12.org.x:a/b", "'/' is not allowed"),
            ("iqn.2026-12.org.é", "'é' is not allowed"),
            ("eui.0200456", "16 hex digits"),
            ("eui.02004567a425678g", "16 hex digits"),
            ("naa.52004567ba64678d00", "16 or 32 hex digits"),
        ] {
            let e = bad.parse::<Iqn>().unwrap_err().0;
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                e.starts_with(&format!("`{bad}` is not an iSCSI name")),
                "{e}"
            );
        }
        let long = format!("iqn.2026-12.org.x:{}", "a".repeat(MAX_LEN));
        assert!(long.parse::<Iqn>().unwrap_err().0.contains("at most 223"));
    }
}

//! Debian version ordering (deb-version(7)): `[epoch:]upstream[-revision]`,
//! compared part by part with dpkg's rules (`~` sorts before everything,
//! letters before other characters, digit runs numerically).

use std::cmp::Ordering;

/// Compares two Debian version strings the way `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((up, rev)) => (epoch, up, rev),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefixes, character by character.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let o = order(ca).cmp(&order(cb));
            if o != Ordering::Equal {
                return o;
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        // Digit runs, numerically (leading zeros ignored).
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, ra) = a.split_at(da);
        let (nb, rb) = b.split_at(db);
        let na = strip_zeros(na);
        let nb = strip_zeros(nb);
        let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
        if o != Ordering::Equal {
            return o;
        }
        a = ra;
        b = rb;
    }
    Ordering::Equal
}

fn strip_zeros(n: &[u8]) -> &[u8] {
    let z = n.iter().take_while(|c| **c == b'0').count();
    n.get(z..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn dpkg_ordering() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+deb12u1", Less),
            ("1:1.0", "2.0", Greater),
            ("6.1.192-2", "6.1.176-1", Greater),
            ("6.1.76-1", "6.1.176-1", Less),
            ("1.35.0-4+deb12u1+b1", "1.35.0-4+deb12u1", Greater),
            ("1.0a", "1.0-1", Greater),
            ("001", "1", Equal),
            ("1.0-1~bpo12+1", "1.0-1", Less),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}

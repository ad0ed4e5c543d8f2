//! Sizes with units: `512M`, `1G`, `64MiB`.

/// Parses `<number><unit>` where unit is one of K, M, G, T (optionally
/// followed by `iB` or `B`; all binary). A bare number is accepted only when
/// `allow_bare` is set and is then taken as bytes.
pub fn parse_bytes(s: &str, allow_bare: bool) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a size: expected a number and a unit such as \"512M\""
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: number too large"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" if allow_bare => 0,
        "" => {
            return Err(format!(
                "`{s}` has no unit: write it with one, e.g. \"{n}M\" (K, M, G or T)"
            ));
        }
        "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Human form of a byte count, e.g. `1 GiB`, `37.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if (v.fract()).abs() < 0.05 || i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_bytes("512M", false), Ok(512 << 20));
        assert_eq!(parse_bytes("1G", false), Ok(1 << 30));
        assert_eq!(parse_bytes("2GiB", false), Ok(2 << 30));
        assert_eq!(parse_bytes("4096", true), Ok(4096));
        assert!(parse_bytes("512", false).unwrap_err().contains("no unit"));
        assert!(
            parse_bytes("12Q", false)
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes("M", false).is_err());
        assert!(parse_bytes("99999999999T", false).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(1536 << 10), "1.5 MiB");
        assert_eq!(human(100), "100 B");
    }
}

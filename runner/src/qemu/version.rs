//! Which QEMU is installed, and whether the migration check is proven on it.

use std::path::Path;
use std::process::Command;

/// The oldest QEMU the live-migration check is proven on.
pub const MIN_VERSION: (u32, u32) = (10, 0);

/// Why older QEMUs are refused (issue 5's trials on 2-core TCG machines).
pub const WHY: &str = "under TCG, QEMU 7.2 (Debian bookworm) crashed the destination guest in about 13 of \
22 live migrations of a guest dirtying memory (idle guests passed), while QEMU 10.0.2 from \
bookworm-backports passed 56/56 such runs; install qemu-system-x86 from bookworm-backports";

/// Errors finding or judging the QEMU binary.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The binary could not be run.
    #[error("cannot run {binary} --version: {source} (is qemu-system-x86 installed?)")]
    Run {
        binary: String,
        source: std::io::Error,
    },
    /// Its output did not contain a version.
    #[error("cannot find a version in the output of {binary} --version: {output:?}")]
    Unparsable { binary: String, output: String },
    /// The version is older than the one the check is proven on.
    #[error("QEMU {found} is too old: the migration check needs {}.{} or newer, because {WHY}", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { found: String },
}

/// A QEMU version, as `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Parses the first line of `qemu-system-x86_64 --version`,
/// e.g. `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)`.
pub fn parse(output: &str) -> Option<QemuVersion> {
    let rest = output.split("version ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let mut nums = word.split('.').map(|n| {
        n.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let major = nums.next()?.ok()?;
    let minor = nums.next()?.ok()?;
    let micro = nums.next().and_then(Result::ok).unwrap_or(0);
    Some(QemuVersion {
        major,
        minor,
        micro,
    })
}

/// Refuses versions older than [`MIN_VERSION`].
pub fn check(v: QemuVersion) -> Result<QemuVersion, VersionError> {
    if (v.major, v.minor) < MIN_VERSION {
        return Err(VersionError::TooOld {
            found: v.to_string(),
        });
    }
    Ok(v)
}

/// Runs `<binary> --version` and checks the result.
pub fn detect(binary: &Path) -> Result<QemuVersion, VersionError> {
    let name = binary.display().to_string();
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|source| VersionError::Run {
            binary: name.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = parse(&text).ok_or(VersionError::Unparsable {
        binary: name,
        output: text,
    })?;
    check(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_versions() {
        let v =
            parse("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright")
                .unwrap();
        assert_eq!((v.major, v.minor, v.micro), (10, 0, 2));
        let v = parse("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)").unwrap();
        assert_eq!(v.to_string(), "7.2.15");
        assert_eq!(parse("QEMU emulator version 9.1").unwrap().micro, 0);
        assert!(parse("no version here").is_none());
    }

    #[test]
    fn refuses_7_2_with_explanation() {
        let e = check(parse("QEMU emulator version 7.2.15").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("7.2.15 is too old"), "{e}");
        assert!(e.contains("bookworm-backports"), "{e}");
        assert!(check(parse("QEMU emulator version 10.0.0").unwrap()).is_ok());
        assert!(check(parse("QEMU emulator version 11.1.0").unwrap()).is_ok());
        assert!(check(parse("QEMU emulator version 9.2.4").unwrap()).is_err());
    }
}

//! Busybox applets: ask the binary being installed (`busybox --list-full`).
//! Debian's busybox-static is a static x86_64 binary, so it runs on the build
//! host.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the applet list could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AppletError {
    /// Running the binary failed.
    #[error("cannot run {path} --list-full to list its applets: {source}")]
    Run {
        /// The busybox binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It ran but failed or listed nothing.
    #[error("{path} --list-full failed or listed no applets ({status})")]
    Empty {
        /// The busybox binary.
        path: PathBuf,
        /// Its exit status.
        status: String,
    },
}

/// The applets `busybox` reports, as absolute install paths (`/bin/sh`,
/// `/usr/bin/awk`), sorted, without `/bin/busybox` itself.
pub fn applets(busybox: &Path) -> Result<Vec<String>, AppletError> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .env_clear()
        .output()
        .map_err(|source| AppletError::Run {
            path: busybox.to_path_buf(),
            source,
        })?;
    let list = parse_list_full(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() || list.is_empty() {
        return Err(AppletError::Empty {
            path: busybox.to_path_buf(),
            status: out.status.to_string(),
        });
    }
    Ok(list)
}

/// Parses `--list-full` output (`bin/sh`, `usr/sbin/chroot`, `linuxrc` …).
pub fn parse_list_full(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("..") && !l.contains(char::is_whitespace))
        .map(|l| format!("/{}", l.trim_start_matches('/')))
        .filter(|p| p != "/bin/busybox")
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list() {
        let v = parse_list_full("bin/sh\nusr/bin/awk\n\nsbin/init\nbin/busybox\nlinuxrc\nbin/sh\n");
        assert_eq!(v, ["/bin/sh", "/linuxrc", "/sbin/init", "/usr/bin/awk"]);
    }

    #[test]
    fn host_busybox_lists_sh() {
        // The build host's busybox (if any) stands in for the packaged one.
        let p = Path::new("/bin/busybox");
        if p.exists() {
            let v = applets(p).unwrap();
            assert!(v.iter().any(|a| a == "/bin/sh"), "{v:?}");
        }
    }
}

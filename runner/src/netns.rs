//! A private network namespace with a bridge and fresh taps, removed on drop.
//!
//! Layout: `br0` holds the bridge address ([`crate::guest::GuestDir::network`]:
//! the guest's gateway, or without one another address of its subnet);
//! `tap0` and `tap1` are bridge ports for the two QEMUs (source and
//! destination). Nothing is routed outside the namespace.
//!
//! The namespace is made by `ip netns add` (which mounts on `/run/netns`,
//! needing CAP_SYS_ADMIN and write access there) and QEMU runs under `ip
//! netns exec`: child processes that need the capabilities too. Capabilities
//! given to the imgrun file with `setcap` reach none of them (an unprivileged
//! user's children exec without them), so the only advice that works is to
//! run imgrun as root.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Errors setting up or using the namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The process lacks CAP_NET_ADMIN.
    #[error(
        "imgrun needs CAP_NET_ADMIN to create its network namespace, bridge and taps: \
         run it as root (e.g. sudo imgrun ...)"
    )]
    NoCapability,
    /// Not root: the capabilities imgrun has (from file capabilities) are
    /// not passed on to the `ip` it runs, which then fails.
    #[error(
        "`{command}` failed: {stderr}\nimgrun needs CAP_NET_ADMIN and CAP_SYS_ADMIN in the `ip` and QEMU \
         processes it runs, and capabilities of the imgrun file (setcap) are not passed on to them: \
         run it as root (e.g. sudo imgrun ...)"
    )]
    NotInherited { command: String, stderr: String },
    /// An `ip` command failed.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    /// `ip` could not be run.
    #[error("cannot run `ip` (install iproute2): {0}")]
    NoIp(std::io::Error),
    /// Entering the namespace failed.
    #[error("cannot enter network namespace {name}: {source}")]
    Enter {
        name: String,
        source: std::io::Error,
    },
}

/// `Err(NoCapability)` unless this process has CAP_NET_ADMIN; callers check
/// before they create anything (a log directory, a KVM probe).
pub fn check_capability() -> Result<(), NetnsError> {
    if has_cap_net_admin() {
        Ok(())
    } else {
        Err(NetnsError::NoCapability)
    }
}

/// Whether the effective capability set holds CAP_NET_ADMIN (bit 12).
pub fn has_cap_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    cap_eff_has(&status, 12)
}

fn cap_eff_has(status: &str, bit: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// Runs `ip <args>`, turning a failure into an error with its stderr.
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetnsError::NoIp)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The prefix of every namespace imgrun creates: `imgrun-<pid>-<n>`.
pub const PREFIX: &str = "imgrun-";
/// The prefix of a namespace made to outlive the run (`imgrun run
/// --keep`): `imgrun-kept-<pid>-<n>`, which [`remove_stale`] leaves alone.
pub const KEPT_PREFIX: &str = "imgrun-kept-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace with `br0` (address `bridge/prefix`) and taps `tap0`, `tap1`.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    /// [`NetNs::keep`] was called: Drop leaves it.
    kept: bool,
}

/// Tap names, one per QEMU slot.
pub const TAPS: [&str; 2] = ["tap0", "tap1"];

impl NetNs {
    /// Creates a fresh, uniquely named namespace and its bridge (holding
    /// `bridge/prefix`) and taps.
    pub fn create(bridge: Ipv4Addr, prefix: u8) -> Result<NetNs, NetnsError> {
        NetNs::create_as(PREFIX, bridge, prefix)
    }

    /// As [`NetNs::create`], named `imgrun-kept-<pid>-<n>`: for a guest
    /// that may be kept running after imgrun exits ([`NetNs::keep`]), so
    /// that a later run does not take it for a killed run's.
    pub fn create_keepable(bridge: Ipv4Addr, prefix: u8) -> Result<NetNs, NetnsError> {
        NetNs::create_as(KEPT_PREFIX, bridge, prefix)
    }

    fn create_as(name_prefix: &str, bridge: Ipv4Addr, prefix: u8) -> Result<NetNs, NetnsError> {
        check_capability()?;
        let pid = std::process::id();
        let name = loop {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let candidate = format!("{name_prefix}{pid}-{n}");
            if !Path::new("/run/netns").join(&candidate).exists() {
                break candidate;
            }
        };
        ip(&["netns", "add", &name]).map_err(|e| match e {
            NetnsError::Command { command, stderr } if !rustix::process::geteuid().is_root() => {
                NetnsError::NotInherited { command, stderr }
            }
            e => e,
        })?;
        // From here on, Drop removes the namespace and everything in it.
        let ns = NetNs { name, kept: false };
        ns.setup(bridge, prefix)?;
        Ok(ns)
    }

    fn setup(&self, bridge: Ipv4Addr, prefix: u8) -> Result<(), NetnsError> {
        let n = self.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            n,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{bridge}/{prefix}"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", n, "link", "set", "br0", "up"])?;
        for tap in TAPS {
            ip(&["-n", n, "tuntap", "add", "dev", tap, "mode", "tap"])?;
            ip(&["-n", n, "link", "set", tap, "master", "br0"])?;
            ip(&["-n", n, "link", "set", tap, "up"])?;
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the namespace in place when this is dropped (`ip netns del
    /// NAME` removes it).
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// Runs `f` on a new thread that has entered the namespace; sockets it
    /// creates belong to the namespace and may be used from any thread.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = Path::new("/run/netns").join(&self.name);
        let name = self.name.clone();
        let file = File::open(&path).map_err(|source| NetnsError::Enter {
            name: name.clone(),
            source,
        })?;
        let handle = std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(std::io::Error::from)?;
            Ok::<T, std::io::Error>(f())
        });
        match handle.join() {
            Ok(r) => r.map_err(|source| NetnsError::Enter { name, source }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Deleting the namespace removes the bridge and taps inside it.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "imgrun: warning: could not remove namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Removes `imgrun-<pid>-<n>` namespaces whose imgrun process no longer exists
/// (left by a run that was killed with SIGKILL). Returns the names removed.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return removed;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_pid(&name) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists()
            && ip(&["netns", "del", &name]).is_ok()
        {
            removed.push(name);
        }
    }
    removed
}

fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bit_is_read_from_cap_eff() {
        let root = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert!(cap_eff_has(root, 12));
        let user = "CapEff:\t0000000000000000\n";
        assert!(!cap_eff_has(user, 12));
        let only_net_admin = "CapEff:\t0000000000001000\n";
        assert!(cap_eff_has(only_net_admin, 12));
        assert!(!cap_eff_has("nothing", 12));
    }

    #[test]
    fn only_our_names_count_as_stale() {
        assert_eq!(stale_pid("imgrun-1234-0"), Some(1234));
        assert_eq!(stale_pid("imgrun-1234"), None);
        assert_eq!(stale_pid("other-1234-0"), None);
        assert_eq!(stale_pid("imgrun-x-0"), None);
        // A kept guest's namespace outlives its imgrun on purpose.
        assert_eq!(stale_pid(&format!("{KEPT_PREFIX}1234-0")), None);
    }
}

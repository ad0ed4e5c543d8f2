//! The kernel's NBD client as the attach step drives it: `nbd-client`
//! (nbd 3.24: it connects over the netlink interface and exits, no daemon
//! stays), the host's `/dev/nbdN` devices, and the runner's link to the one
//! it connected. Pure: nothing here runs anything.

/// Prints the host's NBD state in one round trip: `link DEV` if the link
/// (`$1`) points somewhere, then `busy nbdN` / `free nbdN` for each device
/// (busy: `/sys/block/nbdN/pid` exists, the kernel holds a connection).
const STATE_SCRIPT: &str = r#"l=$(readlink "$1" 2>/dev/null) && echo "link $l"
for d in /sys/block/nbd*; do
  [ -e "$d" ] || continue
  if [ -e "$d/pid" ]; then echo "busy ${d##*/}"; else echo "free ${d##*/}"; fi
done
true"#;

/// The argv that prints the NBD state for `link` (see [`State`]).
pub fn state(link: &str) -> Vec<String> {
    ["sh", "-c", STATE_SCRIPT, "sh", link]
        .map(str::to_string)
        .to_vec()
}

/// What [`state`] printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Where the link points, if it exists.
    pub link: Option<String>,
    /// Devices (`nbd0`, …) and whether a connection holds them, in
    /// numeric order.
    pub devices: Vec<(String, bool)>,
}

impl State {
    pub fn parse(out: &str) -> State {
        let mut s = State::default();
        for l in out.lines() {
            match l.split_once(' ') {
                Some(("link", dev)) => s.link = Some(dev.trim().to_string()),
                Some((kind @ ("busy" | "free"), dev)) => {
                    s.devices.push((dev.trim().to_string(), kind == "busy"));
                }
                _ => {}
            }
        }
        // The shell's glob sorts nbd10 before nbd2.
        s.devices.sort_by_key(|(d, _)| {
            d.trim_start_matches("nbd")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        s
    }

    /// The connected device the link points at (`/dev/nbdN`), if it does.
    pub fn linked_busy(&self) -> Option<String> {
        let dev = self.link.as_deref()?.strip_prefix("/dev/")?;
        self.devices
            .iter()
            .any(|(d, busy)| *busy && d == dev)
            .then(|| format!("/dev/{dev}"))
    }

    /// The first device no connection holds (`/dev/nbdN`).
    pub fn first_free(&self) -> Option<String> {
        self.devices
            .iter()
            .find(|(_, busy)| !busy)
            .map(|(d, _)| format!("/dev/{d}"))
    }
}

/// Connect `dev` to `export` on `host` `port`. Block size stays the
/// kernel's 512 (what a file-backed disk gives the guest today); no
/// `-persist` (in 3.24 it needs nbd-client to stay as a daemon).
pub fn connect(host: &str, port: u16, export: &str, dev: &str) -> Vec<String> {
    ["nbd-client", "-N", export, host, &port.to_string(), dev]
        .map(str::to_string)
        .to_vec()
}

/// Disconnect `dev`.
pub fn disconnect(dev: &str) -> Vec<String> {
    ["nbd-client", "-d", dev].map(str::to_string).to_vec()
}

/// What a failed `nbd-client` said, by its stderr (it exits 1 for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered but has no such export.
    NoExport,
    /// The server could not be reached.
    Unreachable,
    /// The kernel has no NBD driver (no netlink family `nbd`).
    NoDriver,
    /// The device is in use.
    Busy,
    /// Anything else.
    Other,
}

impl Failure {
    pub fn of(stderr: &str) -> Failure {
        let s = stderr.to_ascii_lowercase();
        if s.contains("export unknown") || s.contains("unknown export") {
            Failure::NoExport
        } else if s.contains("netlink family") {
            Failure::NoDriver
        } else if [
            "connection refused",
            "timed out",
            "no route to host",
            "network is unreachable",
            "name or service not known",
            "temporary failure in name resolution",
            "socket failed",
        ]
        .iter()
        .any(|m| s.contains(m))
        {
            Failure::Unreachable
        } else if s.contains("device or resource busy") || s.contains("already") {
            Failure::Busy
        } else {
            Failure::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_parsed_and_sorted() {
        let s = State::parse(
            "link /dev/nbd10\nbusy nbd0\nbusy nbd10\nfree nbd1\nfree nbd2\nbusy nbd3\n",
        );
        assert_eq!(s.link.as_deref(), Some("/dev/nbd10"));
        assert_eq!(s.devices.first().map(|d| d.0.as_str()), Some("nbd0"));
        assert_eq!(s.devices.last().map(|d| d.0.as_str()), Some("nbd10"));
        assert_eq!(s.linked_busy().as_deref(), Some("/dev/nbd10"));
        assert_eq!(s.first_free().as_deref(), Some("/dev/nbd1"));
        // A link to a device no connection holds any more is stale.
        let stale = State::parse("link /dev/nbd1\nbusy nbd0\nfree nbd1\n");
        assert_eq!(stale.linked_busy(), None);
        assert_eq!(stale.first_free().as_deref(), Some("/dev/nbd1"));
        // No driver: no devices at all.
        let none = State::parse("");
        assert_eq!((none.link.as_deref(), none.first_free()), (None, None));
    }

    /// The script runs under /bin/sh here: a missing link and no devices.
    #[test]
    fn state_script_runs() {
        let argv = state("/nonexistent/imgrun-link");
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let s = State::parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(s.link, None);
    }

    #[test]
    fn argv() {
        assert_eq!(
            connect("10.99.0.1", 10809, "busybox", "/dev/nbd0").join(" "),
            "nbd-client -N busybox 10.99.0.1 10809 /dev/nbd0"
        );
        assert_eq!(disconnect("/dev/nbd3").join(" "), "nbd-client -d /dev/nbd3");
    }

    /// nbd-client 3.24's own words, as captured against nbd-server 3.24.
    #[test]
    fn failures_by_stderr() {
        for (err, want) in [
            (
                "Error: Unknown error returned by server. Server said: Export unknown\nExiting.\n",
                Failure::NoExport,
            ),
            (
                "Error: Socket failed: Connection refused\nExiting.\n",
                Failure::Unreachable,
            ),
            (
                "Error: Couldn't resolve the nbd netlink family, make sure the nbd module is loaded and your nbd driver supports the netlink interface.\n\nExiting.\n",
                Failure::NoDriver,
            ),
            (
                "Error: Failed to setup device, check dmesg\n",
                Failure::Other,
            ),
        ] {
            assert_eq!(Failure::of(err), want, "{err}");
        }
    }
}

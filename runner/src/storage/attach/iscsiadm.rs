//! open-iscsi's `iscsiadm` as the attach step uses it: the argv of each
//! command, the parsers of its flat listings (`-m session`, `-m discovery`)
//! and what its exit codes mean. Pure: nothing here runs anything.
//!
//! The listings are the flat formats of open-iscsi 2.x (`usr/session_info.c`,
//! `usr/idbm.c`):
//!
//! ```text
//! tcp: [1] 10.99.0.1:3260,1 iqn.2026-12.org.imgbuild:busybox (non-flash)
//! 10.99.0.1:3260,1 iqn.2026-12.org.imgbuild:busybox
//! [fd00::1]:3260,1 iqn.2026-12.org.imgbuild:busybox
//! ```

/// One line of `iscsiadm -m session` or `-m discovery`: a portal (as
/// iscsiadm writes it, `ip:port` or `[ip6]:port`), its portal group tag
/// and a target name. Target names are compared lower case (RFC 3722).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub portal: String,
    pub tpgt: u32,
    pub target: String,
}

/// Parses `PORTAL,TPGT TARGET` (the words after a session's `[sid]`).
fn record(portal_tpgt: &str, target: &str) -> Option<Record> {
    let (portal, tpgt) = portal_tpgt.rsplit_once(',')?;
    let (_, port) = portal.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(Record {
        portal: portal.to_string(),
        tpgt: tpgt.parse().ok()?,
        target: target.to_ascii_lowercase(),
    })
}

/// The sessions `iscsiadm -m session` lists (`TRANSPORT: [SID] PORTAL,TPGT
/// TARGET (NODE-TYPE)`; the node type is missing before open-iscsi 2.0.874).
/// Lines of another shape are skipped.
pub fn parse_sessions(out: &str) -> Vec<Record> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let transport = w.next()?;
            let sid = w.next()?;
            if !(transport.ends_with(':') && sid.starts_with('[') && sid.ends_with(']')) {
                return None;
            }
            record(w.next()?, w.next()?)
        })
        .collect()
}

/// The targets `iscsiadm -m discovery -t sendtargets` lists
/// (`PORTAL,TPGT TARGET`). Lines of another shape are skipped.
pub fn parse_discovery(out: &str) -> Vec<Record> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let r = record(w.next()?, w.next()?)?;
            w.next().is_none().then_some(r)
        })
        .collect()
}

/// Ask the portal which targets it offers (also records them as nodes).
pub fn discovery(portal: &str) -> Vec<String> {
    argv(&["-m", "discovery", "-t", "sendtargets", "-p", portal])
}

/// The host's sessions.
pub fn sessions() -> Vec<String> {
    argv(&["-m", "session"])
}

/// Log in to `target` through `portal`.
pub fn login(target: &str, portal: &str) -> Vec<String> {
    argv(&["-m", "node", "-T", target, "-p", portal, "--login"])
}

/// Log out of `target` through `portal`.
pub fn logout(target: &str, portal: &str) -> Vec<String> {
    argv(&["-m", "node", "-T", target, "-p", portal, "--logout"])
}

/// The session detail (`-P 3`: the SCSI disks each session attached).
pub fn session_detail() -> Vec<String> {
    argv(&["-m", "session", "-P", "3"])
}

fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once("iscsiadm")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// What an iscsiadm exit code says (`include/iscsi_err.h`: iscsiadm exits
/// with its error number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// 4, 8, 11: the portal did not answer, or not in time.
    Unreachable,
    /// 5, 19, 24: the target refused the login.
    LoginRefused,
    /// 12: the kernel's iSCSI transport (`iscsi_tcp`) is missing.
    NoDriver,
    /// 15: the session is already there.
    SessionExists,
    /// 18, 20, 33: iscsid is not running or not answering.
    NoDaemon,
    /// 21: nothing found (no sessions; no node record).
    NotFound,
    /// Anything else.
    Other,
}

impl Exit {
    pub fn of(code: Option<i32>) -> Exit {
        match code {
            Some(0) => Exit::Ok,
            Some(4 | 8 | 11) => Exit::Unreachable,
            Some(5 | 19 | 24) => Exit::LoginRefused,
            Some(12) => Exit::NoDriver,
            Some(15) => Exit::SessionExists,
            Some(18 | 20 | 33) => Exit::NoDaemon,
            Some(21) => Exit::NotFound,
            _ => Exit::Other,
        }
    }
}

/// From `iscsiadm -m session -P 3`: the lines naming LUNs and their disks
/// (`scsi2 Channel 00 Id 0 Lun: 1`, `Attached scsi disk sdb State: running`),
/// for an error that says what the host did see.
pub fn lun_lines(detail: &str) -> Vec<String> {
    detail
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" Lun: ") || l.starts_with("Attached scsi disk"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `iscsiadm -m session` of open-iscsi 2.1.8 (Debian 12) with two
    /// sessions, one over IPv6; an old-format line (no node type); noise.
    const SESSIONS: &str = "\
tcp: [1] 10.99.0.1:3260,1 iqn.2026-12.org.imgbuild:busybox (non-flash)
tcp: [12] [fd00::1]:3261,2 IQN.2026-12.org.imgbuild:Other (non-flash)
tcp: [3] 192.168.1.10:3260,1 iqn.2001-04.com.example:old
iscsiadm: No active sessions.
";

    #[test]
    fn sessions_are_parsed() {
        let s = parse_sessions(SESSIONS);
        assert_eq!(
            s,
            [
                Record {
                    portal: "10.99.0.1:3260".into(),
                    tpgt: 1,
                    target: "iqn.2026-12.org.imgbuild:busybox".into()
                },
                Record {
                    portal: "[fd00::1]:3261".into(),
                    tpgt: 2,
                    target: "iqn.2026-12.org.imgbuild:other".into()
                },
                Record {
                    portal: "192.168.1.10:3260".into(),
                    tpgt: 1,
                    target: "iqn.2001-04.com.example:old".into()
                },
            ]
        );
        assert!(parse_sessions("iscsiadm: No active sessions.\n").is_empty());
        assert!(parse_sessions("").is_empty());
    }

    /// `iscsiadm -m discovery -t sendtargets` against tgt with two targets,
    /// the second also offered on IPv6.
    #[test]
    fn discovery_is_parsed() {
        let out = "127.0.0.1:3260,1 iqn.2026-12.org.imgbuild:a\n\
                   127.0.0.1:3260,1 iqn.2026-12.org.imgbuild:b\n\
                   [::1]:3260,1 iqn.2026-12.org.imgbuild:b\n\
                   iscsiadm: some warning here\n";
        let d = parse_discovery(out);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].portal, "127.0.0.1:3260");
        assert_eq!(d[2].portal, "[::1]:3260");
        assert_eq!(d[2].target, "iqn.2026-12.org.imgbuild:b");
        // A session line is not a discovery record, nor is junk.
        assert!(parse_discovery(SESSIONS).is_empty());
        assert!(parse_discovery("a,b c\n1.2.3.4:x,1 t\n").is_empty());
    }

    #[test]
    fn argv_is_one_word_per_argument() {
        assert_eq!(
            login("iqn.2026-12.org.imgbuild:busybox", "10.99.0.1:3260"),
            [
                "iscsiadm",
                "-m",
                "node",
                "-T",
                "iqn.2026-12.org.imgbuild:busybox",
                "-p",
                "10.99.0.1:3260",
                "--login"
            ]
        );
        assert_eq!(
            discovery("[fd00::1]:3260").join(" "),
            "iscsiadm -m discovery -t sendtargets -p [fd00::1]:3260"
        );
        assert_eq!(
            logout("t", "p").last().map(String::as_str),
            Some("--logout")
        );
        assert_eq!(sessions().join(" "), "iscsiadm -m session");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Exit::of(Some(0)), Exit::Ok);
        assert_eq!(Exit::of(Some(4)), Exit::Unreachable);
        assert_eq!(Exit::of(Some(24)), Exit::LoginRefused);
        assert_eq!(Exit::of(Some(12)), Exit::NoDriver);
        assert_eq!(Exit::of(Some(15)), Exit::SessionExists);
        assert_eq!(Exit::of(Some(20)), Exit::NoDaemon);
        assert_eq!(Exit::of(Some(21)), Exit::NotFound);
        assert_eq!(Exit::of(Some(1)), Exit::Other);
        assert_eq!(Exit::of(None), Exit::Other);
    }

    #[test]
    fn lun_lines_name_what_the_host_saw() {
        let detail = "\
Target: iqn.2026-12.org.imgbuild:busybox (non-flash)
\tCurrent Portal: 10.99.0.1:3260,1
\t\t************************
\t\tAttached SCSI devices:
\t\t************************
\t\tHost Number: 2\tState: running
\t\tscsi2 Channel 00 Id 0 Lun: 0
\t\tscsi2 Channel 00 Id 0 Lun: 1
\t\t\tAttached scsi disk sdb\t\tState: running
";
        assert_eq!(
            lun_lines(detail),
            [
                "scsi2 Channel 00 Id 0 Lun: 0",
                "scsi2 Channel 00 Id 0 Lun: 1",
                "Attached scsi disk sdb State: running"
            ]
        );
    }
}

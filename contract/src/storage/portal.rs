//! Where a storage server listens: a host (an IP literal or a DNS name) and
//! a TCP port — an iSCSI portal or an NBD server.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::net::ValueError;

/// The iSCSI port (RFC 7143 §13.1), the default of an iSCSI portal.
pub const ISCSI_PORT: u16 = 3260;
/// The NBD port (IANA `nbd`), the default of an NBD server.
pub const NBD_PORT: u16 = 10809;

/// The host part of a [`Portal`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortalHost {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A DNS name (RFC 1123 labels: letters, digits, `-`), lower case.
    Name(String),
}

impl fmt::Display for PortalHost {
    /// The host alone: an IPv6 literal without brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortalHost::Ip(ip) => write!(f, "{ip}"),
            PortalHost::Name(n) => f.write_str(n),
        }
    }
}

/// A host and a port, written `10.99.0.1:3260`, `[fd00::1]:3260` or
/// `nas.example.org:10809`.
///
/// [`Portal::parse`] takes the port as optional and fills in a default;
/// [`FromStr`] (and the manifest) wants it written, which [`fmt::Display`]
/// always does. A DNS name is kept lower case and may not look like an
/// IPv4 address (all labels numeric), so `10.99.0.300` is an error and not
/// a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Portal {
    host: PortalHost,
    port: u16,
}

impl Portal {
    /// The portal at `host`, `port` (a name is lower-cased); a port of 0
    /// is refused.
    pub fn new(host: PortalHost, port: u16) -> Result<Portal, ValueError> {
        let host = match host {
            PortalHost::Name(n) => PortalHost::Name(n.to_ascii_lowercase()),
            ip => ip,
        };
        if port == 0 {
            return Err(ValueError(format!("{host}: port 0 is not a TCP port")));
        }
        if let PortalHost::Name(n) = &host {
            if let Some(why) = name_problem(n) {
                return Err(ValueError(format!("`{n}` is not a host name: {why}")));
            }
        }
        Ok(Portal { host, port })
    }

    /// Parses `host[:port]`, `[v6][:port]`; without a port, `default_port`.
    pub fn parse(s: &str, default_port: u16) -> Result<Portal, ValueError> {
        parse(s, Some(default_port))
    }

    /// The host.
    pub fn host(&self) -> &PortalHost {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IP address, if the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            PortalHost::Ip(ip) => Some(ip),
            PortalHost::Name(_) => None,
        }
    }

    /// The socket address, if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for Portal {
    fn from(a: SocketAddr) -> Portal {
        Portal {
            host: PortalHost::Ip(a.ip()),
            port: a.port(),
        }
    }
}

/// Why `n` is not a DNS host name, if it is not.
fn name_problem(n: &str) -> Option<String> {
    if n.is_empty() {
        return Some("it is empty".into());
    }
    if n.len() > 253 {
        return Some(format!("it is {} bytes; at most 253", n.len()));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (a leading, trailing or double dot)".into());
        }
        if label.len() > 63 {
            return Some(format!("label `{label}` is longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "{c:?} is not allowed (letters, digits, '-' and '.')"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label `{label}` starts or ends with '-'"));
        }
    }
    if n.split('.').all(|l| l.bytes().all(|c| c.is_ascii_digit())) {
        return Some("it looks like an IPv4 address but is not one".into());
    }
    None
}

fn parse(s: &str, default_port: Option<u16>) -> Result<Portal, ValueError> {
    let bad = |why: &str| {
        ValueError(format!(
            "`{s}` is not a host and port: {why} (e.g. 10.99.0.1:3260, [fd00::1]:3260, nas.example.org:3260)"
        ))
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        let ip: Ipv6Addr = v6
            .parse()
            .map_err(|_| bad(&format!("`{v6}` is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected `:port` after `]`"))?,
            ),
        };
        (PortalHost::Ip(IpAddr::V6(ip)), port)
    } else {
        if s.matches(':').count() > 1 {
            return Err(bad("write an IPv6 address in brackets, [addr]:port"));
        }
        let (h, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let host = match h.parse::<Ipv4Addr>() {
            Ok(ip) => PortalHost::Ip(IpAddr::V4(ip)),
            Err(_) => {
                let name = h.to_ascii_lowercase();
                if let Some(why) = name_problem(&name) {
                    return Err(bad(&format!(
                        "`{h}` is not an IPv4 address or host name: {why}"
                    )));
                }
                PortalHost::Name(name)
            }
        };
        (host, port)
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("`{p}` is not a port (1 to 65535)")))?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad("the port is missing")),
    };
    Portal::new(host, port)
}

impl FromStr for Portal {
    type Err = ValueError;

    /// Parses `host:port` or `[v6]:port`: the port must be there.
    fn from_str(s: &str) -> Result<Portal, ValueError> {
        parse(s, None)
    }
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            PortalHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_round_trip() {
        for (s, default, want, ip) in [
            ("10.99.0.1:3260", ISCSI_PORT, "10.99.0.1:3260", true),
            ("10.99.0.1", ISCSI_PORT, "10.99.0.1:3260", true),
            ("10.99.0.1", NBD_PORT, "10.99.0.1:10809", true),
            ("[fd00::1]:3261", ISCSI_PORT, "[fd00::1]:3261", true),
            ("[FD00:0::1]", ISCSI_PORT, "[fd00::1]:3260", true),
            (
                "NAS.example.org:10809",
                NBD_PORT,
                "nas.example.org:10809",
                false,
            ),
            ("storage-1", NBD_PORT, "storage-1:10809", false),
            ("1.example", NBD_PORT, "1.example:10809", false),
        ] {
            let p = Portal::parse(s, default).unwrap();
            assert_eq!(p.to_string(), want, "{s}");
            assert_eq!(want.parse::<Portal>(), Ok(p.clone()), "{s}");
            assert_eq!(p.ip().is_some(), ip, "{s}");
            assert_eq!(p.socket_addr().map(Portal::from), ip.then(|| p.clone()));
        }
        let p: Portal = "[fd00::1]:3260".parse().unwrap();
        assert_eq!(p.host().to_string(), "fd00::1");
        assert_eq!(p.port(), 3260);
    }

    #[test]
    fn refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("10.99.0.300", "looks like an IPv4 address"),
            ("10.99.0.1:0", "`0` is not a port"),
            ("10.99.0.1:65536", "`65536` is not a port"),
            ("10.99.0.1:", "`` is not a port"),
            ("10.99.0.1:x", "`x` is not a port"),
            ("fd00::1", "in brackets"),
            ("fd00::1:3260", "in brackets"),
            ("[fd00::1", "without `]`"),
            ("[fd00::x]:1", "not an IPv6 address"),
            ("[fd00::1]3260", "expected `:port`"),
            ("nas_1:3260", "'_' is not allowed"),
            ("nas..x", "empty label"),
            ("-nas", "starts or ends with '-'"),
            ("a b", "' ' is not allowed"),
            ("a,b", "',' is not allowed"),
        ] {
            let e = Portal::parse(bad, ISCSI_PORT).unwrap_err().0;
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let e = "10.99.0.1".parse::<Portal>().unwrap_err().0;
        assert!(e.contains("the port is missing"), "{e}");
        assert!(Portal::new(PortalHost::Name("a_b".into()), 1).is_err());
        assert!(Portal::new(PortalHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), 0).is_err());
    }
}

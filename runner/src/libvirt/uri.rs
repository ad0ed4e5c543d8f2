//! A libvirt connection URI as `--libvirt` and `--hosts` take it:
//! `DRIVER[+TRANSPORT]://[USER@][HOST[:PORT]]/PATH[?PARAMS]`, checked
//! before virsh sees it (virsh gets it as one argv word after `-c`, never
//! through a shell).

use std::fmt;

use crate::xen::host::XenHost;

/// The hypervisor driver a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `xen://`: libvirt's libxl driver.
    Xen,
    /// `qemu://`: libvirt's QEMU driver (KVM or TCG).
    Qemu,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Xen => "xen",
            Driver::Qemu => "qemu",
        })
    }
}

/// How virsh reaches the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No transport and no host, or `+unix`: this machine's daemon.
    Local,
    /// `+ssh`, `+libssh`, `+libssh2`: a tunnel through ssh to HOST.
    Ssh,
    /// `+tcp`, `+tls`: the daemon's own listening socket on HOST.
    Socket,
}

/// A checked libvirt URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtUri {
    text: String,
    pub driver: Driver,
    pub transport: Transport,
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvirt URI {uri:?}: {why}")]
pub struct UriError {
    pub uri: String,
    pub why: String,
}

fn word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl LibvirtUri {
    /// Parses and checks `text`: a driver imgrun has domain XML for (xen,
    /// qemu), a known transport, a path of `/system` (or `/session` for
    /// qemu; `xen:///` is `xen:///system`), and nothing a shell or virsh
    /// could read as more than one URI.
    pub fn parse(text: &str) -> Result<LibvirtUri, UriError> {
        let err = |why: &str| UriError {
            uri: text.to_string(),
            why: why.to_string(),
        };
        if text.is_empty() {
            return Err(err("empty (a stray comma in --hosts?)"));
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            || !text.is_ascii()
        {
            return Err(err("spaces, control or non-ASCII characters"));
        }
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            err("not DRIVER[+TRANSPORT]://[USER@][HOST]/PATH (e.g. xen+ssh://root@host1/system)")
        })?;
        let (driver, transport) = match scheme.split_once('+') {
            Some((d, t)) => (d, Some(t)),
            None => (scheme, None),
        };
        let driver = match driver {
            "xen" | "libxl" => Driver::Xen,
            "qemu" => Driver::Qemu,
            other => {
                return Err(err(&format!(
                    "driver {other:?}: imgrun writes domain XML for xen (libxl) and qemu only"
                )));
            }
        };
        let (authority_path, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        if let Some(q) = query {
            let ok = q.split('&').all(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                word(k)
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/%:,+~".contains(&b))
            });
            if !ok {
                return Err(err(
                    "parameters must be key=value joined by & (letters, digits, . _ - / % : , + ~)",
                ));
            }
        }
        let (authority, path) = match authority_path.find('/') {
            Some(i) => authority_path.split_at(i),
            None => (authority_path, ""),
        };
        match (driver, path) {
            (_, "/system") | (Driver::Xen, "/") | (Driver::Qemu, "/session") => {}
            _ => {
                return Err(err(match driver {
                    Driver::Xen => {
                        "the path must be /system (xen:///system, xen+ssh://host/system)"
                    }
                    Driver::Qemu => {
                        "the path must be /system or /session (qemu:///system, qemu+ssh://host/system)"
                    }
                }));
            }
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(u) = user
            && !word(u)
        {
            return Err(err("the user must be letters, digits, . _ - only"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| err(&format!("port {p:?} is not 1-65535")))?;
                (h, Some(port))
            }
            None => (hostport, None),
        };
        if !host.is_empty() && !word(host) {
            return Err(err(
                "the host must be a name or an IPv4 address (letters, digits, . _ -)",
            ));
        }
        let host = (!host.is_empty()).then(|| host.to_string());
        let transport = match (transport, &host) {
            (None | Some("unix"), None) => Transport::Local,
            (Some("unix"), Some(_)) => {
                return Err(err("+unix connects to this machine: leave out the host"));
            }
            // `qemu://host/system` is TLS, libvirt's default remote transport.
            (None | Some("tcp" | "tls"), _) => Transport::Socket,
            (Some("ssh" | "libssh" | "libssh2"), _) => Transport::Ssh,
            (Some(t), _) => {
                return Err(err(&format!(
                    "transport {t:?}: use ssh, libssh, libssh2, tcp, tls or unix"
                )));
            }
        };
        if transport != Transport::Local && host.is_none() {
            return Err(err("a remote transport needs a host"));
        }
        if transport == Transport::Local && (user.is_some() || port.is_some()) {
            return Err(err("a local URI has no user or port"));
        }
        Ok(LibvirtUri {
            text: text.to_string(),
            driver,
            transport,
            user: user.map(str::to_string),
            host,
            port,
        })
    }

    /// The URI as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host for files and shared storage: this machine for a local
    /// URI, `[USER@]HOST` by ssh (with the same ssh config as the Xen
    /// backend) for an ssh one; none for a daemon reached over TCP/TLS.
    pub fn shell_host(&self, ssh_config: Option<&std::path::Path>) -> Option<XenHost> {
        match self.transport {
            Transport::Local => Some(XenHost::Local),
            Transport::Ssh => {
                let host = self.host.as_deref()?;
                let dest = match &self.user {
                    Some(u) => format!("{u}@{host}"),
                    None => host.to_string(),
                };
                if self.port.is_some() {
                    // ssh takes the port from its config (Host … Port), as xl migrate does.
                    return None;
                }
                XenHost::parse(&dest, ssh_config).ok()
            }
            Transport::Socket => None,
        }
    }

    /// The name in reports: the host (with user), or `localhost`.
    pub fn short_name(&self) -> String {
        match (&self.user, &self.host) {
            (_, None) => "localhost".into(),
            (Some(u), Some(h)) => format!("{u}@{h}"),
            (None, Some(h)) => h.clone(),
        }
    }
}

impl fmt::Display for LibvirtUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> LibvirtUri {
        LibvirtUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        LibvirtUri::parse(s).expect_err(s).why
    }

    #[test]
    fn accepts_the_uris_ops_use() {
        let u = ok("xen+ssh://root@10.99.0.11/system");
        assert_eq!((u.driver, u.transport), (Driver::Xen, Transport::Ssh));
        assert_eq!(u.short_name(), "root@10.99.0.11");
        assert_eq!(
            u.shell_host(None),
            Some(XenHost::parse("root@10.99.0.11", None).unwrap())
        );
        let u = ok("qemu:///system");
        assert_eq!((u.driver, u.transport), (Driver::Qemu, Transport::Local));
        assert_eq!(u.shell_host(None), Some(XenHost::Local));
        assert_eq!(u.short_name(), "localhost");
        assert_eq!(ok("xen:///").transport, Transport::Local);
        let u = ok("qemu+tcp://10.99.0.101:16509/system");
        assert_eq!((u.transport, u.port), (Transport::Socket, Some(16509)));
        assert_eq!(u.shell_host(None), None);
        assert_eq!(
            ok("qemu+unix:///system?socket=/run/a/libvirt-sock").transport,
            Transport::Local
        );
        let u = ok("xen+ssh://h1/system?command=/tmp/x/ssh&no_tty=1");
        assert_eq!(
            u.as_str(),
            "xen+ssh://h1/system?command=/tmp/x/ssh&no_tty=1"
        );
        assert_eq!(ok("qemu+ssh://h2/session").driver, Driver::Qemu);
        // An ssh URI with a port: ssh takes the port from its config.
        assert_eq!(ok("qemu+ssh://h2:2222/system").shell_host(None), None);
    }

    #[test]
    fn refuses_what_is_not_one_uri() {
        assert!(bad("xen+ssh://root@h1/system; rm -rf /").contains("spaces"));
        assert!(bad("lxc:///system").contains("xen (libxl) and qemu only"));
        assert!(bad("host1").contains("DRIVER"));
        assert!(bad("").contains("stray comma"));
        assert!(bad("xen+ssh://h1/session").contains("/system"));
        assert!(bad("qemu+ssh://h1/").contains("/system or /session"));
        assert!(bad("qemu+ftp://h1/system").contains("transport \"ftp\""));
        assert!(bad("qemu+ssh:///system").contains("needs a host"));
        assert!(bad("qemu+ssh://-oProxyCommand=x/system").contains("host must be"));
        assert!(bad("qemu+ssh://ro$ot@h/system").contains("user"));
        assert!(bad("qemu+tcp://h:0/system").contains("port"));
        assert!(bad("qemu+tcp://h:99999/system").contains("port"));
        assert!(bad("qemu:///system?a=$(x)").contains("key=value"));
        assert!(bad("qemu+unix://h/system").contains("leave out the host"));
    }
}

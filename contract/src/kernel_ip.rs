//! The kernel's `ip=` parameter, built by the builder (into the xl.cfg's and
//! the manifest's command lines) and parsed by the init, which applies it
//! over `init.conf`'s network settings.
//!
//! Syntax (the kernel's `Documentation/admin-guide/nfs/nfsroot.rst`):
//! `ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:…`.
//! We build `ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off`. The
//! parser also takes a prefix length as the netmask, `10.0.0.2/24` in the
//! client field, and an empty netmask (the classful default, as the kernel).

use std::fmt;
use std::net::Ipv4Addr;

use crate::net::{Ipv4Cidr, prefix_of_netmask};

/// `ip=` on the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpParam {
    /// `ip=off` / `ip=none`: leave the network alone.
    Off,
    /// `ip=dhcp` and other autoconfiguration (not done by the init).
    Auto(String),
    /// A static configuration.
    Static(StaticIp),
}

/// The static form of `ip=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    /// Guest address and prefix (from the netmask, or the classful default).
    pub address: Ipv4Cidr,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Host name, as written (the init checks it before using it).
    pub hostname: Option<String>,
    /// Device name (`None`: the configured interface, else `eth0`).
    pub device: Option<String>,
}

/// The classful default prefix the kernel uses when `ip=` has no netmask.
pub fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

impl IpParam {
    /// Parses the value of `ip=` (without `ip=`).
    pub fn parse(v: &str) -> Result<IpParam, String> {
        match v {
            "off" | "none" => return Ok(IpParam::Off),
            "on" | "any" | "dhcp" | "bootp" | "rarp" | "both" | "dhcp6" | "auto6" => {
                return Ok(IpParam::Auto(v.to_owned()));
            }
            _ => {}
        }
        let f: Vec<&str> = v.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        let client = field(0);
        let (addr_s, inline_prefix) = match client.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (client, None),
        };
        if addr_s.is_empty() {
            let auto = field(6);
            return Ok(IpParam::Auto(if auto.is_empty() {
                "on".to_owned()
            } else {
                auto.to_owned()
            }));
        }
        let addr: Ipv4Addr = addr_s
            .parse()
            .map_err(|_| format!("client address {addr_s:?} is not IPv4"))?;
        let gateway = match field(2) {
            "" => None,
            g => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| format!("gateway {g:?} is not IPv4"))?,
            ),
        };
        let prefix = match (inline_prefix, field(3)) {
            (Some(p), _) => prefix_number(p)?,
            (None, "") => class_prefix(addr),
            (None, m) if m.bytes().all(|b| b.is_ascii_digit()) => prefix_number(m)?,
            (None, m) => {
                let mask: Ipv4Addr = m
                    .parse()
                    .map_err(|_| format!("netmask {m:?} is not IPv4"))?;
                prefix_of_netmask(mask).ok_or_else(|| format!("netmask {m} is not contiguous"))?
            }
        };
        let address = Ipv4Cidr::new(addr, prefix).map_err(|e| e.0)?;
        let hostname = Some(field(4)).filter(|h| !h.is_empty()).map(str::to_owned);
        let device = Some(field(5)).filter(|d| !d.is_empty()).map(str::to_owned);
        match field(6) {
            "" | "off" | "none" | "static" => {}
            other => {
                return Err(format!(
                    "autoconf {other:?} with a static address is not supported"
                ));
            }
        }
        Ok(IpParam::Static(StaticIp {
            address,
            gateway,
            hostname,
            device,
        }))
    }
}

fn prefix_number(p: &str) -> Result<u8, String> {
    p.parse::<u8>()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("prefix {p:?} is not 0-32"))
}

/// The value of `ip=` (without `ip=`), in the kernel's own syntax, so the
/// kernel's parser (were it to run) and ours read the same thing.
impl fmt::Display for IpParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpParam::Off => f.write_str("off"),
            IpParam::Auto(how) => f.write_str(how),
            IpParam::Static(s) => write!(
                f,
                "{}::{}:{}:{}:{}:off",
                s.address.addr(),
                s.gateway.map(|g| g.to_string()).unwrap_or_default(),
                s.address.netmask(),
                s.hostname.as_deref().unwrap_or(""),
                s.device.as_deref().unwrap_or("")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(v: &str) -> StaticIp {
        match IpParam::parse(v) {
            Ok(IpParam::Static(s)) => s,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn builds_what_it_parses() {
        let s = StaticIp {
            address: "10.99.0.2/24".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
            hostname: Some("busybox".into()),
            device: Some("eth0".into()),
        };
        let text = IpParam::Static(s.clone()).to_string();
        assert_eq!(text, "10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off");
        assert_eq!(IpParam::parse(&text), Ok(IpParam::Static(s)));
        let bare = StaticIp {
            address: "172.16.3.4/20".parse().unwrap(),
            gateway: None,
            hostname: None,
            device: None,
        };
        let text = IpParam::Static(bare.clone()).to_string();
        assert_eq!(text, "172.16.3.4:::255.255.240.0:::off");
        assert_eq!(IpParam::parse(&text), Ok(IpParam::Static(bare)));
        assert_eq!(IpParam::parse(&IpParam::Off.to_string()), Ok(IpParam::Off));
    }

    #[test]
    fn kernel_syntax_variants() {
        let s = stat("10.0.2.15");
        assert_eq!((s.address.prefix(), s.gateway, s.device), (8, None, None));
        assert_eq!(stat("192.168.7.9:::255.255.0.0::").address.prefix(), 16);
        let s = stat("172.16.0.5/20::172.16.0.1");
        assert_eq!(
            (s.address.prefix(), s.gateway),
            (20, Some(Ipv4Addr::new(172, 16, 0, 1)))
        );
        let s = stat("10.1.1.1:10.1.1.9:10.1.1.254:28:h::none:8.8.8.8");
        assert_eq!((s.address.prefix(), s.hostname.as_deref()), (28, Some("h")));
        assert_eq!(IpParam::parse("off"), Ok(IpParam::Off));
        assert_eq!(IpParam::parse("dhcp"), Ok(IpParam::Auto("dhcp".into())));
        assert_eq!(
            IpParam::parse(":::::eth0:dhcp"),
            Ok(IpParam::Auto("dhcp".into()))
        );
        for bad in [
            "10.0.0.300",
            "10.0.0.3::10.0.0.1:255.0.255.0",
            "10.0.0.3::::h:eth0:dhcp",
            "10.0.0.3::x",
            "10.0.0.3:::33",
            "10.0.0.0:::24",
        ] {
            assert!(IpParam::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn class_defaults() {
        assert_eq!(class_prefix(Ipv4Addr::new(10, 0, 0, 1)), 8);
        assert_eq!(class_prefix(Ipv4Addr::new(172, 16, 0, 1)), 16);
        assert_eq!(class_prefix(Ipv4Addr::new(192, 168, 0, 1)), 24);
    }
}

//! Network values of a recipe: IPv4 CIDR addresses and MAC addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// An IPv4 host address with its prefix length, e.g. `10.99.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The host address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Cidr {
    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// Whether `ip` is inside this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = mask(self.prefix);
        u32::from(ip) & m == u32::from(self.addr) & m
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            format!("`{s}` is not in CIDR form: expected address/prefix, e.g. \"10.99.0.2/24\"")
        })?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{s}`: `{a}` is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{s}`: prefix `{p}` must be a number from 0 to 32"))?;
        if prefix == 0 {
            return Err(format!("`{s}`: prefix /0 leaves no network"));
        }
        let host = u32::from(addr) & !mask(prefix);
        if prefix < 31 && host == 0 {
            return Err(format!(
                "`{s}` is the network address of its subnet, not a host address"
            ));
        }
        if prefix < 31 && host == !mask(prefix) {
            return Err(format!(
                "`{s}` is the broadcast address of its subnet, not a host address"
            ));
        }
        if addr.is_multicast() || addr.is_unspecified() || addr.is_broadcast() {
            return Err(format!("`{s}` is not a unicast host address"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A unicast Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The stable default MAC for a guest: Xen's OUI 00:16:3e followed by
    /// three bytes of SHA-256 of the guest name.
    pub fn for_guest(name: &str) -> Mac {
        let h = Sha256::digest(name.as_bytes());
        Mac([0x00, 0x16, 0x3e, h[0] & 0x7f, h[1], h[2]])
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        let mut b = [0u8; 6];
        if parts.len() != 6 {
            return Err(format!(
                "`{s}` is not a MAC address: expected six hex bytes like 00:16:3e:12:34:56"
            ));
        }
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!(
                    "`{s}` is not a MAC address: `{p}` is not two hex digits"
                ));
            }
            b[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address: `{p}` is not two hex digits"))?;
        }
        if b[0] & 1 == 1 {
            return Err(format!(
                "`{s}` is a multicast/broadcast MAC (low bit of the first byte set); a NIC needs a unicast MAC such as 00:16:3e:12:34:56"
            ));
        }
        if b == [0; 6] {
            return Err(format!(
                "`{s}` is the all-zero MAC, not a usable unicast address"
            ));
        }
        Ok(Mac(b))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ok() {
        let c: Cidr = "10.99.0.2/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(c.prefix, 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 99, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 99, 1, 1)));
        assert_eq!(c.to_string(), "10.99.0.2/24");
    }

    #[test]
    fn cidr_bad() {
        for (s, want) in [
            ("10.99.0.2", "CIDR form"),
            ("10.99.0.300/24", "not an IPv4"),
            ("10.99.0.2/33", "prefix"),
            ("10.99.0.0/24", "network address"),
            ("10.99.0.255/24", "broadcast address"),
            ("224.0.0.5/24", "unicast"),
        ] {
            let e = s.parse::<Cidr>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn mac_parse_and_reject() {
        let m: Mac = "00:16:3E:01:02:03".parse().unwrap();
        assert_eq!(m.to_string(), "00:16:3e:01:02:03");
        assert!(
            "01:00:5e:00:00:01"
                .parse::<Mac>()
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<Mac>()
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            "00:00:00:00:00:00"
                .parse::<Mac>()
                .unwrap_err()
                .contains("all-zero")
        );
        assert!("00:16:3e:01:02".parse::<Mac>().is_err());
        assert!("00:16:3e:01:02:zz".parse::<Mac>().is_err());
    }

    #[test]
    fn default_mac_is_stable_xen_unicast() {
        let a = Mac::for_guest("busybox");
        assert_eq!(a, Mac::for_guest("busybox"));
        assert_ne!(a, Mac::for_guest("other"));
        assert_eq!(&a.0[..3], &[0x00, 0x16, 0x3e]);
        assert_eq!(a.to_string().parse::<Mac>(), Ok(a));
    }
}

//! The guest network's values, one parser each: the NIC's [`Mac`], the
//! guest's address with its prefix ([`Ipv4Cidr`]), netmasks, and Linux
//! interface names. The recipe, `init.conf`, `ip=` and the manifest all use
//! these, so a value one program accepts the others accept too.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The guest's one network interface: the first NIC, as Linux names it under
/// both Xen (`xen-netfront`) and QEMU (`virtio_net`).
pub const GUEST_IFACE: &str = "eth0";

/// A value that does not parse, with a message that says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn invalid(message: String) -> ValueError {
    ValueError(message)
}

/// A unicast Ethernet MAC address: not multicast or broadcast (low bit of
/// the first byte clear) and not all zero. Written `00:16:3e:12:34:56`;
/// parsed from that form, upper or lower case, with `:` or `-` separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac([u8; 6]);

impl Mac {
    /// The MAC with these bytes, if it is a usable unicast address.
    pub fn new(bytes: [u8; 6]) -> Result<Mac, ValueError> {
        Mac::checked(bytes, &Mac(bytes).to_string())
    }

    /// `bytes` as a MAC, if unicast and not zero; errors quote `text`.
    fn checked(bytes: [u8; 6], text: &str) -> Result<Mac, ValueError> {
        if bytes[0] & 1 == 1 {
            return Err(invalid(format!(
                "`{text}` is a multicast/broadcast MAC (low bit of the first byte set); a NIC needs a unicast MAC such as 00:16:3e:12:34:56"
            )));
        }
        if bytes == [0; 6] {
            return Err(invalid(format!(
                "`{text}` is the all-zero MAC, not a usable unicast address"
            )));
        }
        Ok(Mac(bytes))
    }

    /// A MAC in Xen's OUI, `00:16:3e`, as Xen's toolstack makes them: the
    /// top bit of the fourth byte is cleared. Always usable.
    pub fn with_xen_oui(nic: [u8; 3]) -> Mac {
        Mac([0x00, 0x16, 0x3e, nic[0] & 0x7f, nic[1], nic[2]])
    }

    /// The six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for Mac {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Mac, ValueError> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(invalid(format!(
                "`{s}` is not a MAC address: expected six hex bytes like 00:16:3e:12:34:56"
            )));
        }
        let mut bytes = [0u8; 6];
        for (b, p) in bytes.iter_mut().zip(&parts) {
            let two_hex = p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit());
            *b = u8::from_str_radix(p, 16)
                .ok()
                .filter(|_| two_hex)
                .ok_or_else(|| {
                    invalid(format!(
                        "`{s}` is not a MAC address: `{p}` is not two hex digits"
                    ))
                })?;
        }
        Mac::checked(bytes, s)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The netmask of a prefix length (`24` → 255.255.255.0); 0 and anything
/// above 32 are clamped to 0.0.0.0 and 255.255.255.255.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(mask_bits(prefix))
}

fn mask_bits(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// The prefix length of a contiguous netmask (255.255.240.0 → 20).
pub fn prefix_of_netmask(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    let contiguous = m.checked_shl(ones).unwrap_or(0) == 0;
    contiguous.then(|| u8::try_from(ones).ok()).flatten()
}

/// An IPv4 host address with its prefix length, `10.99.0.2/24`: a unicast
/// address that is neither the network nor the broadcast address of its
/// subnet (both are allowed in /31 and /32), prefix 1 to 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix`, if that is a usable host address.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, ValueError> {
        let s = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(invalid(format!(
                "`{s}`: prefix `{prefix}` must be a number from 0 to 32"
            )));
        }
        if prefix == 0 {
            return Err(invalid(format!("`{s}`: prefix /0 leaves no network")));
        }
        let host = u32::from(addr) & !mask_bits(prefix);
        if prefix < 31 && host == 0 {
            return Err(invalid(format!(
                "`{s}` is the network address of its subnet, not a host address"
            )));
        }
        if prefix < 31 && host == !mask_bits(prefix) {
            return Err(invalid(format!(
                "`{s}` is the broadcast address of its subnet, not a host address"
            )));
        }
        if addr.is_multicast() || addr.is_unspecified() || addr.is_broadcast() {
            return Err(invalid(format!("`{s}` is not a unicast host address")));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }

    /// The host address.
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 1 to 32.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(self) -> Ipv4Addr {
        netmask(self.prefix)
    }

    /// Whether `ip` is inside this address's subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let m = mask_bits(self.prefix);
        u32::from(ip) & m == u32::from(self.addr) & m
    }

    /// Checks `gateway` can be this address's gateway: another address of
    /// the same subnet.
    pub fn check_gateway(self, gateway: Ipv4Addr) -> Result<(), ValueError> {
        if !self.contains(gateway) {
            return Err(invalid(format!("gateway {gateway} is outside {self}")));
        }
        if gateway == self.addr {
            return Err(invalid(format!(
                "gateway {gateway} is the guest's own address"
            )));
        }
        Ok(())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Ipv4Cidr, ValueError> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            invalid(format!(
                "`{s}` is not in CIDR form: expected address/prefix, e.g. \"10.99.0.2/24\""
            ))
        })?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| invalid(format!("`{s}`: `{a}` is not an IPv4 address")))?;
        let prefix: u8 =
            p.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
                invalid(format!("`{s}`: prefix `{p}` must be a number from 0 to 32"))
            })?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Checks a Linux network interface name as the kernel does
/// (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// white space.
pub fn check_ifname(name: &str) -> Result<(), ValueError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{name}` is not an interface name: 1-15 bytes, no '/', ':' or spaces"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ok() {
        let c: Ipv4Cidr = "10.99.0.2/24".parse().unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(c.prefix(), 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 99, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 99, 1, 1)));
        assert_eq!(c.to_string(), "10.99.0.2/24");
        assert!("10.0.0.0/31".parse::<Ipv4Cidr>().is_ok());
        assert!("10.0.0.7/32".parse::<Ipv4Cidr>().is_ok());
    }

    #[test]
    fn cidr_bad() {
        for (s, want) in [
            ("10.99.0.2", "CIDR form"),
            ("10.99.0.300/24", "not an IPv4"),
            ("10.99.0.2/33", "prefix"),
            ("10.99.0.2/0", "no network"),
            ("10.99.0.0/24", "network address"),
            ("10.99.0.255/24", "broadcast address"),
            ("224.0.0.5/24", "unicast"),
        ] {
            let e = s.parse::<Ipv4Cidr>().unwrap_err().0;
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn gateways() {
        let c: Ipv4Cidr = "10.99.0.2/24".parse().unwrap();
        assert!(c.check_gateway(Ipv4Addr::new(10, 99, 0, 1)).is_ok());
        let e = c.check_gateway(Ipv4Addr::new(10, 98, 0, 1)).unwrap_err().0;
        assert!(e.contains("outside 10.99.0.2/24"), "{e}");
        let e = c.check_gateway(c.addr()).unwrap_err().0;
        assert!(e.contains("own address"), "{e}");
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(20), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_of_netmask(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(
            prefix_of_netmask(Ipv4Addr::new(255, 255, 255, 255)),
            Some(32)
        );
        assert_eq!(prefix_of_netmask(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_of_netmask(Ipv4Addr::new(255, 0, 255, 0)), None);
        for p in 0..=32 {
            assert_eq!(prefix_of_netmask(netmask(p)), Some(p));
        }
    }

    #[test]
    fn mac_parse_and_reject() {
        let m: Mac = "00:16:3E:01:02:ff".parse().unwrap();
        assert_eq!(m.octets(), [0, 0x16, 0x3e, 1, 2, 0xff]);
        assert_eq!(m.to_string(), "00:16:3e:01:02:ff");
        assert_eq!("00-16-3e-01-02-ff".parse::<Mac>(), Ok(m));
        let x = Mac::with_xen_oui([0xff, 1, 2]);
        assert_eq!(x.to_string(), "00:16:3e:7f:01:02");
        assert_eq!(Mac::new(x.octets()), Ok(x));
        let e = "01:00:5e:00:00:01".parse::<Mac>().unwrap_err().0;
        assert!(
            e.contains("multicast") && e.contains("`01:00:5e:00:00:01`"),
            "{e}"
        );
        assert!(
            "FF:FF:FF:FF:FF:FF"
                .parse::<Mac>()
                .unwrap_err()
                .0
                .contains("`FF:FF:FF:FF:FF:FF` is a multicast")
        );
        assert!(
            "00:00:00:00:00:00"
                .parse::<Mac>()
                .unwrap_err()
                .0
                .contains("all-zero")
        );
        for bad in [
            "00:16:3e:01:02",
            "00:16:3e:01:02:03:04",
            "0:16:3e:01:02:03",
            "00:16:3e:01:02:zz",
            "00:16:3e:01:02:+f",
            "",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "xenbr0", "br-lan.10", "a"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "has space",
            "sixteen-chars-xx",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
    }
}

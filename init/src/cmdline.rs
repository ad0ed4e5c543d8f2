//! The kernel command line (`/proc/cmdline`): `root=`, `ro`/`rw`, `ip=`,
//! `rootwait`, and `init.*` options.

use std::net::Ipv4Addr;

/// How the root device is named by `root=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    /// A device node such as `/dev/vda` or `/dev/xvda`.
    Path(String),
    /// `LABEL=<ext4 volume name>`.
    Label(String),
    /// `UUID=<ext4 filesystem UUID>` (lower-case, with dashes).
    Uuid([u8; 16]),
}

/// `ip=` on the kernel command line, in the kernel's syntax:
/// `ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpParam {
    /// `ip=off` / `ip=none`: leave the network alone.
    Off,
    /// `ip=dhcp` and other autoconfiguration (not supported by this init).
    Auto(String),
    /// A static configuration.
    Static(StaticIp),
}

/// The static form of `ip=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    /// Guest address.
    pub address: Ipv4Addr,
    /// Prefix length derived from the netmask (class default if empty).
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Host name.
    pub hostname: Option<String>,
    /// Device name (empty means: the configured interface, else `eth0`).
    pub device: Option<String>,
}

/// What the init takes from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    /// `root=`.
    pub root: Option<RootSpec>,
    /// `ro` (the kernel's default) unless `rw` is given; the last one wins.
    pub read_write: bool,
    /// `rootfstype=` (default ext4).
    pub rootfstype: Option<String>,
    /// `rootflags=`.
    pub rootflags: Option<String>,
    /// `ip=`.
    pub ip: Option<IpParam>,
    /// `init.*` options as (name without `init.`, value; `""` for a bare flag).
    pub init_opts: Vec<(String, String)>,
    /// Parameters that failed to parse, with the reason (logged, not fatal).
    pub warnings: Vec<String>,
}

impl Cmdline {
    /// Parses a kernel command line; unknown parameters are ignored.
    pub fn parse(text: &str) -> Self {
        let mut c = Cmdline::default();
        for word in split_cmdline(text) {
            let (k, v) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word.as_str(), None),
            };
            match (k, v) {
                ("ro", None) => c.read_write = false,
                ("rw", None) => c.read_write = true,
                ("root", Some(v)) => match parse_root(v) {
                    Ok(r) => c.root = Some(r),
                    Err(e) => c.warnings.push(format!("root={v}: {e}")),
                },
                ("rootfstype", Some(v)) => c.rootfstype = Some(v.to_owned()),
                ("rootflags", Some(v)) => c.rootflags = Some(v.to_owned()),
                ("ip", Some(v)) => match parse_ip(v) {
                    Ok(ip) => c.ip = Some(ip),
                    Err(e) => c.warnings.push(format!("ip={v}: {e}")),
                },
                _ => {
                    if let Some(name) = k.strip_prefix("init.") {
                        c.init_opts
                            .push((name.to_owned(), v.unwrap_or("").to_owned()));
                    }
                }
            }
        }
        c
    }

    /// The value of `init.<name>`, the last one if repeated.
    pub fn init_opt(&self, name: &str) -> Option<&str> {
        self.init_opts
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on spaces, keeping `"double quoted"` parts together (quotes removed),
/// like the kernel's `next_arg`.
pub fn split_cmdline(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in text.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parses the value of `root=`.
pub fn parse_root(v: &str) -> Result<RootSpec, &'static str> {
    if let Some(l) = v.strip_prefix("LABEL=") {
        if l.is_empty() || l.len() > 16 {
            return Err("an ext4 label is 1-16 bytes");
        }
        return Ok(RootSpec::Label(l.to_owned()));
    }
    if let Some(u) = v.strip_prefix("UUID=") {
        return parse_uuid(u)
            .map(RootSpec::Uuid)
            .ok_or("expected UUID=xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    }
    if v.starts_with("/dev/") && v.len() > 5 {
        return Ok(RootSpec::Path(v.to_owned()));
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        // `root=vda` is accepted by the kernel too.
        return Ok(RootSpec::Path(format!("/dev/{v}")));
    }
    Err("expected /dev/<name>, LABEL=<label> or UUID=<uuid>")
}

/// Parses a UUID with or without dashes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Formats a UUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Prefix length of a netmask such as 255.255.255.0, if it is contiguous.
pub fn netmask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful default prefix the kernel uses when `ip=` has no netmask.
pub fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Parses the value of `ip=`.
pub fn parse_ip(v: &str) -> Result<IpParam, String> {
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
    // Accept `10.0.0.2/24` in the client field as a convenience.
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
    let address: Ipv4Addr = addr_s
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
        (Some(p), _) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("prefix {p:?} is not 0-32"))?,
        (None, "") => class_prefix(address),
        (None, m) => {
            if let Ok(p) = m.parse::<u8>() {
                if p > 32 {
                    return Err(format!("prefix {m:?} is not 0-32"));
                }
                p
            } else {
                let mask: Ipv4Addr = m
                    .parse()
                    .map_err(|_| format!("netmask {m:?} is not IPv4"))?;
                netmask_to_prefix(mask).ok_or_else(|| format!("netmask {m} is not contiguous"))?
            }
        }
    };
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
        prefix,
        gateway,
        hostname,
        device,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_kernel_ip_syntax() {
        let c = Cmdline::parse(
            "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off",
        );
        assert_eq!(c.root, Some(RootSpec::Path("/dev/xvda".into())));
        assert!(!c.read_write);
        assert_eq!(
            c.ip,
            Some(IpParam::Static(StaticIp {
                address: Ipv4Addr::new(10, 99, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
                hostname: Some("busybox".into()),
                device: Some("eth0".into()),
            }))
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn ip_variants() {
        let Ok(IpParam::Static(s)) = parse_ip("10.0.2.15") else {
            panic!()
        };
        assert_eq!((s.prefix, s.gateway, s.device), (8, None, None));
        let Ok(IpParam::Static(s)) = parse_ip("192.168.7.9:::255.255.0.0::") else {
            panic!()
        };
        assert_eq!(s.prefix, 16);
        let Ok(IpParam::Static(s)) = parse_ip("172.16.0.5/20::172.16.0.1") else {
            panic!()
        };
        assert_eq!(
            (s.prefix, s.gateway),
            (20, Some(Ipv4Addr::new(172, 16, 0, 1)))
        );
        let Ok(IpParam::Static(s)) = parse_ip("10.1.1.1:10.1.1.9:10.1.1.254:28:h::none:8.8.8.8")
        else {
            panic!()
        };
        assert_eq!((s.prefix, s.hostname.as_deref()), (28, Some("h")));
        assert_eq!(parse_ip("off"), Ok(IpParam::Off));
        assert_eq!(parse_ip("dhcp"), Ok(IpParam::Auto("dhcp".into())));
        assert_eq!(parse_ip(":::::eth0:dhcp"), Ok(IpParam::Auto("dhcp".into())));
        assert!(parse_ip("10.0.0.300").is_err());
        assert!(parse_ip("10.0.0.3::10.0.0.1:255.0.255.0").is_err());
        assert!(parse_ip("10.0.0.3::::h:eth0:dhcp").is_err());
        assert!(parse_ip("10.0.0.3::x").is_err());
    }

    #[test]
    fn root_forms() {
        assert_eq!(
            parse_root("/dev/vda"),
            Ok(RootSpec::Path("/dev/vda".into()))
        );
        assert_eq!(parse_root("vda"), Ok(RootSpec::Path("/dev/vda".into())));
        assert_eq!(
            parse_root("LABEL=busybox-root"),
            Ok(RootSpec::Label("busybox-root".into()))
        );
        let u = parse_root("UUID=0123abcd-0000-1111-2222-33334444FFFF").unwrap();
        let RootSpec::Uuid(bytes) = u else { panic!() };
        assert_eq!(format_uuid(&bytes), "0123abcd-0000-1111-2222-33334444ffff");
        assert!(parse_root("UUID=123").is_err());
        assert!(parse_root("LABEL=").is_err());
        assert!(parse_root("/dev/").is_err());
    }

    #[test]
    fn flags_quotes_and_init_options() {
        let c = Cmdline::parse(
            "rw  root=LABEL=r ro rw init.shell=\"/bin/sh -l\" init.debug ip=bad rootfstype=ext4",
        );
        assert!(c.read_write);
        assert_eq!(c.init_opt("shell"), Some("/bin/sh -l"));
        assert_eq!(c.init_opt("debug"), Some(""));
        assert_eq!(c.init_opt("nope"), None);
        assert_eq!(c.rootfstype.as_deref(), Some("ext4"));
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].starts_with("ip=bad"));
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(
            netmask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)),
            Some(32)
        );
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}

//! The kernel command line: what the builder writes (into the xl.cfg and
//! the manifest, [`KernelCmdline`]) and what the init reads from
//! `/proc/cmdline` ([`Cmdline`]).
//!
//! Keys the init reads: `root=` (`/dev/vda`, `vda`, `LABEL=`, `UUID=`),
//! `ro` / `rw` (the last wins; `ro` is the kernel's default), `rootfstype=`,
//! `rootflags=`, `ip=` ([`crate::kernel_ip`]) and `init.<name>[=<value>]`
//! (`init.root_wait`, `init.shell`, `init.status`). Everything else is the
//! kernel's and ignored.

use std::fmt;

use crate::kernel_ip::IpParam;

/// How the root device is named by `root=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    /// A device node such as `/dev/vda` or `/dev/xvda`.
    Path(String),
    /// `LABEL=<ext4 volume name>`.
    Label(String),
    /// `UUID=<ext4 filesystem UUID>`.
    Uuid([u8; 16]),
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::Path(p) => f.write_str(p),
            RootSpec::Label(l) => write!(f, "LABEL={l}"),
            RootSpec::Uuid(u) => write!(f, "UUID={}", format_uuid(u)),
        }
    }
}

/// Where a guest runs, as far as its kernel command line is concerned: the
/// root disk's device name and the console the init's shell uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// A Xen PV guest: the first `xen-blkfront` disk, the `hvc0` console.
    Xen,
    /// Under QEMU: the first virtio-blk disk, the first serial port;
    /// `panic=-1` so that a panicking guest reboots, which `-no-reboot`
    /// turns into QEMU exiting.
    Qemu,
}

impl Platform {
    /// The root disk as the guest's kernel names it.
    pub fn root_device(self) -> &'static str {
        match self {
            Platform::Xen => "/dev/xvda",
            Platform::Qemu => "/dev/vda",
        }
    }

    /// The console device (`console=`).
    pub fn console(self) -> &'static str {
        match self {
            Platform::Xen => "hvc0",
            Platform::Qemu => "ttyS0",
        }
    }

    /// Further kernel parameters this platform needs.
    pub fn kernel_params(self) -> &'static [&'static str] {
        match self {
            Platform::Xen => &[],
            Platform::Qemu => &["panic=-1"],
        }
    }
}

/// A command line as the builder writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCmdline {
    /// `root=`.
    pub root: RootSpec,
    /// `rw` instead of `ro`.
    pub read_write: bool,
    /// `console=`.
    pub console: String,
    /// `ip=`, if the guest has a network.
    pub ip: Option<IpParam>,
    /// Further parameters, written last.
    pub kernel_params: Vec<String>,
}

impl KernelCmdline {
    /// The command line of a guest on `platform`.
    pub fn for_platform(platform: Platform, ip: Option<IpParam>) -> KernelCmdline {
        KernelCmdline {
            root: RootSpec::Path(platform.root_device().to_owned()),
            read_write: false,
            console: platform.console().to_owned(),
            ip,
            kernel_params: platform
                .kernel_params()
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }
}

impl fmt::Display for KernelCmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.read_write { "rw" } else { "ro" };
        write!(f, "root={} {mode} console={}", self.root, self.console)?;
        if let Some(ip) = &self.ip {
            write!(f, " ip={ip}")?;
        }
        for p in &self.kernel_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
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
                ("ip", Some(v)) => match IpParam::parse(v) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_ip::StaticIp;
    use std::net::Ipv4Addr;

    fn busybox_ip() -> IpParam {
        IpParam::Static(StaticIp {
            address: "10.99.0.2/24".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
            hostname: Some("busybox".into()),
            device: Some("eth0".into()),
        })
    }

    #[test]
    fn platform_command_lines() {
        assert_eq!(
            KernelCmdline::for_platform(Platform::Xen, Some(busybox_ip())).to_string(),
            "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off"
        );
        assert_eq!(
            KernelCmdline::for_platform(Platform::Qemu, Some(busybox_ip())).to_string(),
            "root=/dev/vda ro console=ttyS0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off panic=-1"
        );
        assert_eq!(
            KernelCmdline::for_platform(Platform::Xen, None).to_string(),
            "root=/dev/xvda ro console=hvc0"
        );
    }

    #[test]
    fn the_init_reads_what_the_builder_writes() {
        for platform in [Platform::Xen, Platform::Qemu] {
            for rw in [false, true] {
                let mut k = KernelCmdline::for_platform(platform, Some(busybox_ip()));
                k.read_write = rw;
                let c = Cmdline::parse(&k.to_string());
                assert_eq!(c.root, Some(k.root.clone()));
                assert_eq!(c.read_write, rw);
                assert_eq!(c.ip, k.ip);
                assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            }
        }
    }

    #[test]
    fn full_kernel_ip_syntax() {
        let c = Cmdline::parse(
            "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off",
        );
        assert_eq!(c.root, Some(RootSpec::Path("/dev/xvda".into())));
        assert!(!c.read_write);
        assert_eq!(c.ip, Some(busybox_ip()));
        assert!(c.warnings.is_empty());
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
        assert_eq!(u.to_string(), "UUID=0123abcd-0000-1111-2222-33334444ffff");
        assert_eq!(parse_root(&u.to_string()), Ok(u));
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
}

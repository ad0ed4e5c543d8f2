//! `/etc/imgbuild/init.conf`: what the builder tells the init.
//!
//! A line-oriented `key = value` text file; `#` starts a comment line.
//! List keys (`stage1_module`, `stage2_module`, `service`) repeat, one item per
//! line, in order. Argument lists (`shell`, `service`) are words separated by
//! spaces; a word with spaces, quotes or backslashes is written in double
//! quotes with `\"` and `\\` escapes. Example:
//!
//! ```text
//! stage = 2
//! kernel_version = 6.1.0-56-amd64
//! hostname = busybox
//! root_wait_secs = 10
//! stage1_module = kernel/drivers/block/virtio_blk.ko
//! stage2_module = kernel/net/core/failover.ko
//! stage2_module = kernel/drivers/net/virtio_net.ko
//! net.iface = eth0
//! net.address = 10.99.0.2/24
//! net.gateway = 10.99.0.1
//! net.mac = 00:16:3e:00:00:01
//! net.wait_secs = 5
//! shell = /bin/sh
//! service = respawn /sbin/syslogd -n
//! status.enabled = true
//! status.port = 5115
//! ```

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Where the config file lives, in both the initramfs and the root image.
pub const CONFIG_PATH: &str = "/etc/imgbuild/init.conf";

/// Which image the init is running from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Stage 1: the initramfs (`/init`); finds and switches to the root.
    Initramfs,
    /// Stage 2: the root image (`/sbin/init`); brings the system up.
    #[default]
    Root,
}

/// Network settings for one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Interface name, normally `eth0`.
    pub iface: String,
    /// IPv4 address of the guest.
    pub address: Ipv4Addr,
    /// Prefix length (0–32).
    pub prefix: u8,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// MAC address to set on the interface before bringing it up, if any.
    pub mac: Option<[u8; 6]>,
}

/// When a service is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Run once at boot; never restarted.
    Once,
    /// Restarted whenever it exits, with back-off.
    Respawn,
}

/// A command the init runs after boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Run once or keep running.
    pub restart: Restart,
    /// Program and arguments; `argv[0]` is an absolute path.
    pub argv: Vec<String>,
}

/// The built-in guest status service (see CONTRACTS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusConfig {
    /// Serve at all (off by default).
    pub enabled: bool,
    /// TCP and UDP port.
    pub port: u16,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            port: 5115,
        }
    }
}

/// Everything `init.conf` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    /// Which stage this file configures.
    pub stage: Stage,
    /// Kernel version, the directory name under `/lib/modules`.
    pub kernel_version: String,
    /// Host name to set in stage 2 (overridden by `ip=`'s hostname field).
    pub hostname: Option<String>,
    /// Modules to load in stage 1, in order, paths relative to `/lib/modules/<kver>`.
    pub stage1_modules: Vec<String>,
    /// Modules to load in stage 2, in order, paths relative to `/lib/modules/<kver>`
    /// (a bare module name is resolved with `modules.dep` at boot).
    pub stage2_modules: Vec<String>,
    /// How long stage 1 waits for the root device, in seconds.
    pub root_wait_secs: u32,
    /// Network settings (overridden by `ip=` on the kernel command line).
    pub net: Option<NetConfig>,
    /// How long stage 2 waits for the interface to appear, in seconds.
    pub net_wait_secs: u32,
    /// Console shell argv; empty means no console shell.
    pub shell: Vec<String>,
    /// Services, started in order after the console shell.
    pub services: Vec<Service>,
    /// The status service.
    pub status: StatusConfig,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            stage: Stage::Root,
            kernel_version: String::new(),
            hostname: None,
            stage1_modules: Vec::new(),
            stage2_modules: Vec::new(),
            root_wait_secs: 10,
            net: None,
            net_wait_secs: 5,
            shell: vec!["/bin/sh".to_owned()],
            services: Vec::new(),
            status: StatusConfig::default(),
        }
    }
}

/// What is wrong with an `init.conf`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("init.conf line {line}: key {key:?}: {kind}")]
pub struct ConfigError {
    /// 1-based line number.
    pub line: usize,
    /// The key concerned (empty if the line has none).
    pub key: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// The kinds of [`ConfigError`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The line is not `key = value`.
    #[error("expected `key = value`")]
    NotKeyValue,
    /// The key is not one init.conf knows.
    #[error("unknown key")]
    UnknownKey,
    /// A single-valued key appears twice.
    #[error("given twice (first on line {0})")]
    Duplicate(usize),
    /// The value does not parse.
    #[error("invalid value {value:?}: {why}")]
    BadValue {
        /// The value text.
        value: String,
        /// What was expected.
        why: &'static str,
    },
    /// `net.*` keys given without `net.address`.
    #[error("net.* given but net.address is missing")]
    MissingAddress,
}

fn bad(line: usize, key: &str, value: &str, why: &'static str) -> ConfigError {
    ConfigError {
        line,
        key: key.to_owned(),
        kind: ConfigErrorKind::BadValue {
            value: value.to_owned(),
            why,
        },
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// True for a host name the kernel and `hostname` accept: 1–64 bytes of
/// letters, digits, `-`, `.` and `_`.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// Splits a word list: words separated by whitespace, `"…"` quoting with
/// `\"` and `\\` escapes inside quotes.
pub fn split_words(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated double quote"),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => word.push(c),
                        _ => return Err("only \\\" and \\\\ escapes are allowed in quotes"),
                    },
                    Some(c) => word.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a closing quote must end the word");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err("a quote may only start a word");
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
}

/// Joins words so that [`split_words`] gives them back.
pub fn join_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.as_ref();
        if i > 0 {
            out.push(' ');
        }
        let plain = !w.is_empty()
            && !w
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\');
        if plain {
            out.push_str(w);
        } else {
            out.push('"');
            for c in w.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn parse_module_path(line: usize, key: &str, v: &str) -> Result<String, ConfigError> {
    if v.is_empty()
        || v.starts_with('/')
        || v.split('/').any(|c| c == "..")
        || v.contains(char::is_whitespace)
    {
        return Err(bad(
            line,
            key,
            v,
            "a module path relative to /lib/modules/<kver> (or a module name)",
        ));
    }
    Ok(v.to_owned())
}

impl InitConfig {
    /// Renders the config in the `init.conf` format; `parse(render(c)) == c`.
    pub fn render(&self) -> String {
        let mut o =
            String::from("# /etc/imgbuild/init.conf: written by imgbuild, read by imgbuild-init\n");
        let stage = match self.stage {
            Stage::Initramfs => 1,
            Stage::Root => 2,
        };
        // Writing to a String cannot fail.
        let _ = writeln!(o, "stage = {stage}");
        let _ = writeln!(o, "kernel_version = {}", self.kernel_version);
        if let Some(h) = &self.hostname {
            let _ = writeln!(o, "hostname = {h}");
        }
        let _ = writeln!(o, "root_wait_secs = {}", self.root_wait_secs);
        for m in &self.stage1_modules {
            let _ = writeln!(o, "stage1_module = {m}");
        }
        for m in &self.stage2_modules {
            let _ = writeln!(o, "stage2_module = {m}");
        }
        if let Some(n) = &self.net {
            let _ = writeln!(o, "net.iface = {}", n.iface);
            let _ = writeln!(o, "net.address = {}/{}", n.address, n.prefix);
            if let Some(g) = n.gateway {
                let _ = writeln!(o, "net.gateway = {g}");
            }
            if let Some(m) = &n.mac {
                let _ = writeln!(o, "net.mac = {}", format_mac(m));
            }
        }
        let _ = writeln!(o, "net.wait_secs = {}", self.net_wait_secs);
        let _ = writeln!(o, "shell = {}", join_words(&self.shell));
        for s in &self.services {
            let r = match s.restart {
                Restart::Once => "once",
                Restart::Respawn => "respawn",
            };
            let _ = writeln!(o, "service = {r} {}", join_words(&s.argv));
        }
        let _ = writeln!(o, "status.enabled = {}", self.status.enabled);
        let _ = writeln!(o, "status.port = {}", self.status.port);
        o
    }

    /// Parses `init.conf` text. Keys not given keep their [`Default`] values.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut c = InitConfig::default();
        let mut seen: Vec<(String, usize)> = Vec::new();
        let (mut iface, mut addr, mut gw, mut mac) = (None, None, None, None);
        let mut first_net_line = None;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                return Err(ConfigError {
                    line,
                    key: String::new(),
                    kind: ConfigErrorKind::NotKeyValue,
                });
            };
            let (k, v) = (k.trim(), v.trim());
            let repeatable = matches!(k, "stage1_module" | "stage2_module" | "service");
            if !repeatable {
                if let Some((_, first)) = seen.iter().find(|(s, _)| s == k) {
                    return Err(ConfigError {
                        line,
                        key: k.to_owned(),
                        kind: ConfigErrorKind::Duplicate(*first),
                    });
                }
                seen.push((k.to_owned(), line));
            }
            if k.starts_with("net.") && k != "net.wait_secs" && first_net_line.is_none() {
                first_net_line = Some(line);
            }
            match k {
                "stage" => {
                    c.stage = match v {
                        "1" | "initramfs" => Stage::Initramfs,
                        "2" | "root" => Stage::Root,
                        _ => return Err(bad(line, k, v, "1 (initramfs) or 2 (root)")),
                    }
                }
                "kernel_version" => {
                    if v.contains('/') || v.contains(char::is_whitespace) {
                        return Err(bad(line, k, v, "a kernel release like 6.1.0-56-amd64"));
                    }
                    c.kernel_version = v.to_owned();
                }
                "hostname" => {
                    if !valid_hostname(v) {
                        return Err(bad(line, k, v, "1-64 letters, digits, '-', '.', '_'"));
                    }
                    c.hostname = Some(v.to_owned());
                }
                "root_wait_secs" => {
                    c.root_wait_secs = v.parse().map_err(|_| bad(line, k, v, "whole seconds"))?;
                }
                "net.wait_secs" => {
                    c.net_wait_secs = v.parse().map_err(|_| bad(line, k, v, "whole seconds"))?;
                }
                "stage1_module" => c.stage1_modules.push(parse_module_path(line, k, v)?),
                "stage2_module" => c.stage2_modules.push(parse_module_path(line, k, v)?),
                "net.iface" => {
                    if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', ':']) {
                        return Err(bad(line, k, v, "an interface name (1-15 characters)"));
                    }
                    iface = Some(v.to_owned());
                }
                "net.address" => {
                    let (a, p) = v
                        .split_once('/')
                        .ok_or_else(|| bad(line, k, v, "address/prefix, e.g. 10.99.0.2/24"))?;
                    let a: Ipv4Addr = a
                        .parse()
                        .map_err(|_| bad(line, k, v, "an IPv4 address/prefix"))?;
                    let p: u8 = p
                        .parse()
                        .ok()
                        .filter(|p| *p <= 32)
                        .ok_or_else(|| bad(line, k, v, "a prefix length 0-32"))?;
                    addr = Some((a, p));
                }
                "net.gateway" => {
                    gw = Some(
                        v.parse::<Ipv4Addr>()
                            .map_err(|_| bad(line, k, v, "an IPv4 address"))?,
                    );
                }
                "net.mac" => {
                    mac = Some(
                        parse_mac(v)
                            .ok_or_else(|| bad(line, k, v, "a MAC like 00:16:3e:12:34:56"))?,
                    );
                }
                "shell" => {
                    let w = split_words(v).map_err(|why| bad(line, k, v, why))?;
                    if w.first().is_some_and(|p| !p.starts_with('/')) {
                        return Err(bad(line, k, v, "an absolute program path first"));
                    }
                    c.shell = w;
                }
                "service" => {
                    let w = split_words(v).map_err(|why| bad(line, k, v, why))?;
                    let mut it = w.into_iter();
                    let restart = match it.next().as_deref() {
                        Some("once") => Restart::Once,
                        Some("respawn") => Restart::Respawn,
                        _ => {
                            return Err(bad(
                                line,
                                k,
                                v,
                                "`once` or `respawn` followed by a command",
                            ));
                        }
                    };
                    let argv: Vec<String> = it.collect();
                    if !argv.first().is_some_and(|p| p.starts_with('/')) {
                        return Err(bad(line, k, v, "a command with an absolute program path"));
                    }
                    c.services.push(Service { restart, argv });
                }
                "status.enabled" => {
                    c.status.enabled =
                        parse_bool(v).ok_or_else(|| bad(line, k, v, "true or false"))?;
                }
                "status.port" => {
                    c.status.port = v
                        .parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad(line, k, v, "a port 1-65535"))?;
                }
                _ => {
                    return Err(ConfigError {
                        line,
                        key: k.to_owned(),
                        kind: ConfigErrorKind::UnknownKey,
                    });
                }
            }
        }
        if let Some(line) = first_net_line {
            let Some((address, prefix)) = addr else {
                return Err(ConfigError {
                    line,
                    key: "net.address".to_owned(),
                    kind: ConfigErrorKind::MissingAddress,
                });
            };
            c.net = Some(NetConfig {
                iface: iface.unwrap_or_else(|| "eth0".to_owned()),
                address,
                prefix,
                gateway: gw,
                mac,
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> InitConfig {
        InitConfig {
            stage: Stage::Initramfs,
            kernel_version: "6.1.0-56-amd64".into(),
            hostname: Some("busybox".into()),
            stage1_modules: vec!["kernel/drivers/block/virtio_blk.ko".into()],
            stage2_modules: vec!["kernel/net/core/failover.ko".into(), "virtio_net".into()],
            root_wait_secs: 7,
            net: Some(NetConfig {
                iface: "eth0".into(),
                address: Ipv4Addr::new(10, 99, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
                mac: Some([0, 0x16, 0x3e, 1, 2, 0xab]),
            }),
            net_wait_secs: 3,
            shell: vec!["/bin/sh".into(), "-l".into()],
            services: vec![
                Service {
                    restart: Restart::Respawn,
                    argv: vec!["/sbin/syslogd".into(), "-n".into()],
                },
                Service {
                    restart: Restart::Once,
                    argv: vec![
                        "/bin/echo".into(),
                        "hello \"world\"".into(),
                        "a\\b".into(),
                        String::new(),
                    ],
                },
            ],
            status: StatusConfig {
                enabled: true,
                port: 6000,
            },
        }
    }

    #[test]
    fn round_trip() {
        let c = full();
        let text = c.render();
        assert!(text.contains("net.mac = 00:16:3e:01:02:ab\n"));
        assert!(
            text.contains("service = once /bin/echo \"hello \\\"world\\\"\" \"a\\\\b\" \"\"\n")
        );
        assert_eq!(InitConfig::parse(&text).unwrap(), c);
        let d = InitConfig::default();
        assert_eq!(InitConfig::parse(&d.render()).unwrap(), d);
        assert_eq!(InitConfig::parse("").unwrap(), d);
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = InitConfig::parse("stage = 2\n\nnet.address = 10.0.0.1/33\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.key, "net.address");
        assert!(
            e.to_string()
                .starts_with("init.conf line 3: key \"net.address\": invalid value")
        );

        let e = InitConfig::parse("# c\nbogus = 1\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ConfigErrorKind::UnknownKey));

        let e = InitConfig::parse("hostname = a\nhostname = b\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ConfigErrorKind::Duplicate(1)));

        let e = InitConfig::parse("just words\n").unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::NotKeyValue);

        let e = InitConfig::parse("net.gateway = 10.0.0.1\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str(), e.kind),
            (1, "net.address", ConfigErrorKind::MissingAddress)
        );

        for bad_line in [
            "stage = 3",
            "hostname = has space",
            "stage1_module = /abs/x.ko",
            "stage2_module = ../x.ko",
            "service = sometimes /bin/x",
            "service = once relative",
            "shell = sh",
            "shell = \"/bin/sh",
            "status.port = 0",
            "status.enabled = maybe",
            "net.mac = 00:16:3e:00:00",
            "root_wait_secs = -1",
        ] {
            let e = InitConfig::parse(bad_line).unwrap_err();
            assert_eq!(e.line, 1, "{bad_line}");
            assert!(
                matches!(e.kind, ConfigErrorKind::BadValue { .. }),
                "{bad_line}: {e}"
            );
        }
    }

    #[test]
    fn net_defaults_iface_and_empty_shell() {
        let c = InitConfig::parse("net.address = 10.0.2.15/24\nshell =\n").unwrap();
        let n = c.net.unwrap();
        assert_eq!(n.iface, "eth0");
        assert_eq!(n.gateway, None);
        assert!(c.shell.is_empty());
    }

    #[test]
    fn words() {
        assert_eq!(split_words("  a  \"b c\" d ").unwrap(), ["a", "b c", "d"]);
        assert!(split_words("a\"b").is_err());
        assert!(split_words("\"a\"b").is_err());
        assert_eq!(join_words(&["x", "y z"]), "x \"y z\"");
    }
}

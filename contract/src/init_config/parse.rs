//! Reading `init.conf`: every error names the line and the key.

use std::net::Ipv4Addr;

use super::{InitConfig, NetConfig, Restart, Service, Stage};
use crate::hostname::Hostname;
use crate::net::{GUEST_IFACE, Ipv4Cidr, Mac, check_ifname};
use crate::words::split_words;

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
        why: String,
    },
    /// `net.*` keys given without `net.address`.
    #[error("net.* given but net.address is missing")]
    MissingAddress,
}

fn bad(line: usize, key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        key: key.to_owned(),
        kind: ConfigErrorKind::BadValue {
            value: value.to_owned(),
            why: why.into(),
        },
    }
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

/// The `net.*` keys, collected until the end of the file.
#[derive(Default)]
struct NetKeys {
    first_line: Option<usize>,
    iface: Option<String>,
    address: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
    mac: Option<Mac>,
}

impl NetKeys {
    fn finish(self) -> Result<Option<NetConfig>, ConfigError> {
        let Some(line) = self.first_line else {
            return Ok(None);
        };
        let Some(address) = self.address else {
            return Err(ConfigError {
                line,
                key: "net.address".to_owned(),
                kind: ConfigErrorKind::MissingAddress,
            });
        };
        Ok(Some(NetConfig {
            iface: self.iface.unwrap_or_else(|| GUEST_IFACE.to_owned()),
            address,
            gateway: self.gateway,
            mac: self.mac,
        }))
    }
}

impl InitConfig {
    /// Parses `init.conf` text. Keys not given keep their [`Default`] values.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut c = InitConfig::default();
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut net = NetKeys::default();
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
            if k.starts_with("net.") && k != "net.wait_secs" && net.first_line.is_none() {
                net.first_line = Some(line);
            }
            c.apply(&mut net, line, k, v)?;
        }
        c.net = net.finish()?;
        Ok(c)
    }

    /// Applies one `k = v` line.
    fn apply(
        &mut self,
        net: &mut NetKeys,
        line: usize,
        k: &str,
        v: &str,
    ) -> Result<(), ConfigError> {
        let why = |e: crate::net::ValueError| bad(line, k, v, e.0);
        match k {
            "stage" => {
                self.stage = match v {
                    "1" | "initramfs" => Stage::Initramfs,
                    "2" | "root" => Stage::Root,
                    _ => return Err(bad(line, k, v, "1 (initramfs) or 2 (root)")),
                }
            }
            "kernel_version" => {
                if v.contains('/') || v.contains(char::is_whitespace) {
                    return Err(bad(line, k, v, "a kernel release like 6.1.0-56-amd64"));
                }
                self.kernel_version = v.to_owned();
            }
            "hostname" => self.hostname = Some(v.parse::<Hostname>().map_err(why)?),
            "root_wait_secs" => {
                self.root_wait_secs = v.parse().map_err(|_| bad(line, k, v, "whole seconds"))?;
            }
            "net.wait_secs" => {
                self.net_wait_secs = v.parse().map_err(|_| bad(line, k, v, "whole seconds"))?;
            }
            "stage1_module" => self.stage1_modules.push(parse_module_path(line, k, v)?),
            "stage2_module" => self.stage2_modules.push(parse_module_path(line, k, v)?),
            "net.iface" => {
                check_ifname(v).map_err(why)?;
                net.iface = Some(v.to_owned());
            }
            "net.address" => net.address = Some(v.parse().map_err(why)?),
            "net.gateway" => {
                net.gateway = Some(
                    v.parse::<Ipv4Addr>()
                        .map_err(|_| bad(line, k, v, "an IPv4 address"))?,
                );
            }
            "net.mac" => net.mac = Some(v.parse().map_err(why)?),
            "shell" => {
                let w = split_words(v).map_err(|why| bad(line, k, v, why))?;
                if w.first().is_some_and(|p| !p.starts_with('/')) {
                    return Err(bad(line, k, v, "an absolute program path first"));
                }
                self.shell = w;
            }
            "service" => {
                let w = split_words(v).map_err(|why| bad(line, k, v, why))?;
                let mut it = w.into_iter();
                let restart = it
                    .next()
                    .as_deref()
                    .and_then(Restart::from_word)
                    .ok_or_else(|| bad(line, k, v, "`once` or `respawn` followed by a command"))?;
                let argv: Vec<String> = it.collect();
                if !argv.first().is_some_and(|p| p.starts_with('/')) {
                    return Err(bad(line, k, v, "a command with an absolute program path"));
                }
                self.services.push(Service { restart, argv });
            }
            "status.enabled" => {
                self.status.enabled =
                    parse_bool(v).ok_or_else(|| bad(line, k, v, "true or false"))?;
            }
            "status.port" => {
                self.status.port = v
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "hostname = -x",
            "stage1_module = /abs/x.ko",
            "stage2_module = ../x.ko",
            "service = sometimes /bin/x",
            "service = once relative",
            "shell = sh",
            "shell = \"/bin/sh",
            "status.port = 0",
            "status.enabled = maybe",
            "net.mac = 00:16:3e:00:00",
            "net.mac = 01:00:5e:00:00:01",
            "net.iface = a/b",
            "net.address = 10.0.0.0/24",
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
    fn hostnames_follow_the_one_rule() {
        for h in ["web_01", "my_guest.v2"] {
            let c = InitConfig::parse(&format!("hostname = {h}\n")).unwrap();
            assert_eq!(c.hostname.unwrap().as_str(), h);
        }
    }
}

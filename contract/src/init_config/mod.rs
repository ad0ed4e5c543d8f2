//! `/etc/imgbuild/init.conf`: what the builder tells the init, in both
//! images (`stage = 1` in the initramfs, `stage = 2` in the root image).
//!
//! A line-oriented `key = value` text file; `#` starts a comment line.
//! List keys (`stage1_module`, `stage2_module`, `service`) repeat, one item per
//! line, in order. Argument lists (`shell`, `service`) are word lists
//! ([`crate::words`]). Example:
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
//!
//! [`InitConfig::render`] writes it, [`InitConfig::parse`] reads it back:
//! `parse(render(c)) == c`.

mod parse;

use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub use parse::{ConfigError, ConfigErrorKind};

use crate::hostname::Hostname;
use crate::net::{GUEST_IFACE, Ipv4Cidr, Mac};
use crate::status;
use crate::words::join_words;

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
    /// Interface name, normally [`GUEST_IFACE`].
    pub iface: String,
    /// The guest's address and prefix.
    pub address: Ipv4Cidr,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// MAC address to set on the interface before bringing it up, if any.
    pub mac: Option<Mac>,
}

impl NetConfig {
    /// Settings for the guest's interface, [`GUEST_IFACE`].
    pub fn guest(address: Ipv4Cidr, gateway: Option<Ipv4Addr>, mac: Option<Mac>) -> NetConfig {
        NetConfig {
            iface: GUEST_IFACE.to_owned(),
            address,
            gateway,
            mac,
        }
    }
}

/// When a service is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Run once at boot; never restarted.
    Once,
    /// Restarted whenever it exits, with back-off.
    Respawn,
}

impl Restart {
    /// The word used in `init.conf` and in the recipe.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Once => "once",
            Restart::Respawn => "respawn",
        }
    }

    /// The inverse of [`Restart::as_str`].
    pub fn from_word(w: &str) -> Option<Restart> {
        match w {
            "once" => Some(Restart::Once),
            "respawn" => Some(Restart::Respawn),
            _ => None,
        }
    }
}

/// A command the init runs after boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Run once or keep running.
    pub restart: Restart,
    /// Program and arguments; `argv[0]` is an absolute path.
    pub argv: Vec<String>,
}

/// The built-in guest status service ([`crate::status`]).
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
            port: status::DEFAULT_PORT,
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
    pub hostname: Option<Hostname>,
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
            let _ = writeln!(o, "net.address = {}", n.address);
            if let Some(g) = n.gateway {
                let _ = writeln!(o, "net.gateway = {g}");
            }
            if let Some(m) = &n.mac {
                let _ = writeln!(o, "net.mac = {m}");
            }
        }
        let _ = writeln!(o, "net.wait_secs = {}", self.net_wait_secs);
        let _ = writeln!(o, "shell = {}", join_words(&self.shell));
        for s in &self.services {
            let _ = writeln!(
                o,
                "service = {} {}",
                s.restart.as_str(),
                join_words(&s.argv)
            );
        }
        let _ = writeln!(o, "status.enabled = {}", self.status.enabled);
        let _ = writeln!(o, "status.port = {}", self.status.port);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn full() -> InitConfig {
        InitConfig {
            stage: Stage::Initramfs,
            kernel_version: "6.1.0-56-amd64".into(),
            hostname: Some("busybox".parse().unwrap()),
            stage1_modules: vec!["kernel/drivers/block/virtio_blk.ko".into()],
            stage2_modules: vec!["kernel/net/core/failover.ko".into(), "virtio_net".into()],
            root_wait_secs: 7,
            net: Some(NetConfig::guest(
                "10.99.0.2/24".parse().unwrap(),
                Some(Ipv4Addr::new(10, 99, 0, 1)),
                Some(Mac::new([0, 0x16, 0x3e, 1, 2, 0xab]).unwrap()),
            )),
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
        assert!(text.contains("net.iface = eth0\n"));
        assert!(text.contains("net.address = 10.99.0.2/24\n"));
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
    fn restart_words() {
        for r in [Restart::Once, Restart::Respawn] {
            assert_eq!(Restart::from_word(r.as_str()), Some(r));
        }
        assert_eq!(Restart::from_word("sometimes"), None);
    }
}

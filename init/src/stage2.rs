//! Stage 2, in the root image: mounts, host name, modules, network. The
//! long-running part (console, services, signals) is set up in `main.rs`,
//! which then loops on [`crate::services::Supervisor::round`].

use crate::mounts::{self, KERNEL_FS, SYSTEM_FS};
use crate::sys::Sys;
use crate::{modules, net};
use guest_contract::Hostname;
use guest_contract::cmdline::Cmdline;
use guest_contract::init_config::{InitConfig, NetConfig};
use std::time::Duration;

/// What stage 2 set up, for the status service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    /// The host name set (if any).
    pub hostname: Option<Hostname>,
    /// The network configuration applied (if any).
    pub net: Option<NetConfig>,
    /// True if the interface came up configured.
    pub net_up: bool,
}

/// Brings the system up; every failure is logged and the boot goes on.
pub fn boot<S: Sys>(sys: &mut S, cfg: &InitConfig, cmdline: &Cmdline) -> Booted {
    mounts::mount_all(sys, &KERNEL_FS);
    mounts::mount_all(sys, &SYSTEM_FS);
    for w in &cmdline.warnings {
        sys.log(&format!("kernel command line: {w}"));
    }

    let hostname = net::effective_hostname(cfg, cmdline);
    if let Some(h) = &hostname {
        match sys.set_hostname(h) {
            Ok(()) => sys.log(&format!("hostname {h}")),
            Err(e) => sys.log(&format!("sethostname {h} failed: {e}")),
        }
    }

    modules::load_all(sys, &cfg.kernel_version, &cfg.stage2_modules);

    net::loopback_up(sys);
    let net_cfg = net::effective(cfg, cmdline);
    let net_up = match &net_cfg {
        Some(n) => net::configure(sys, n, Duration::from_secs(u64::from(cfg.net_wait_secs))),
        None => {
            sys.log("no network configured");
            false
        }
    };
    Booted {
        hostname,
        net: net_cfg,
        net_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const CONF: &str = "kernel_version = 6.1.0-56-amd64\nhostname = busybox\n\
        stage2_module = kernel/net/core/failover.ko\nstage2_module = kernel/drivers/net/virtio_net.ko\n\
        net.address = 10.99.0.2/24\nnet.gateway = 10.99.0.1\n";

    #[test]
    fn order_after_switch() {
        let mut sys = FakeSys::new();
        for p in ["/proc", "/sys", "/dev"] {
            sys.mount_points.insert(p.into()); // moved by stage 1
        }
        sys.paths
            .insert("/lib/modules/6.1.0-56-amd64/kernel/net/core/failover.ko".into());
        sys.paths
            .insert("/lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko".into());
        sys.paths.insert("/sys/class/net/eth0".into());
        let cfg = InitConfig::parse(CONF).unwrap();
        let b = boot(&mut sys, &cfg, &Cmdline::parse("root=/dev/vda ro"));
        assert!(b.net_up);
        assert_eq!(
            sys.calls,
            [
                "mkdir /dev/pts",
                "mount devpts /dev/pts devpts nosuid,noexec gid=5,mode=0620,ptmxmode=0666",
                "mkdir /dev/shm",
                "mount shm /dev/shm tmpfs nosuid,nodev mode=1777",
                "mkdir /run",
                "mount run /run tmpfs nosuid,nodev mode=0755",
                "mkdir /tmp",
                "mount tmpfs /tmp tmpfs nosuid,nodev mode=1777",
                "hostname busybox",
                "load_module /lib/modules/6.1.0-56-amd64/kernel/net/core/failover.ko",
                "load_module /lib/modules/6.1.0-56-amd64/kernel/drivers/net/virtio_net.ko",
                "link_up lo",
                "write /proc/sys/net/ipv4/conf/eth0/arp_notify \"1\"",
                "addr eth0 10.99.0.2/24",
                "link_up eth0",
                "route default via 10.99.0.1 dev eth0",
            ]
        );
    }

    #[test]
    fn without_stage1_mounts_kernel_fs_and_ip_overrides() {
        let mut sys = FakeSys::new();
        for p in [
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/run",
            "/tmp",
            "/sys/class/net/eth0",
        ] {
            sys.paths.insert(p.into());
        }
        let cfg = InitConfig::parse(CONF).unwrap();
        let b = boot(
            &mut sys,
            &cfg,
            &Cmdline::parse("ip=10.0.2.15::10.0.2.2:255.255.255.0:vm1:eth0:off"),
        );
        assert_eq!(b.hostname.as_deref(), Some("vm1"));
        assert_eq!(sys.calls[0], "mount proc /proc proc nosuid,nodev,noexec");
        assert!(sys.position("hostname vm1").is_some());
        assert!(sys.position("addr eth0 10.0.2.15/24").is_some());
        assert!(
            sys.position("route default via 10.0.2.2 dev eth0")
                .is_some()
        );
        // both modules missing: logged, skipped, boot continues
        assert!(sys.calls_starting("load_module").is_empty());
        assert_eq!(
            sys.logs
                .iter()
                .filter(|l| l.contains("is missing; skipped"))
                .count(),
            2
        );
    }

    #[test]
    fn no_nic_still_boots() {
        let mut sys = FakeSys::new();
        let cfg = InitConfig::parse(CONF).unwrap();
        let b = boot(&mut sys, &cfg, &Cmdline::parse(""));
        assert!(!b.net_up);
        assert!(sys.logs.iter().any(|l| l.contains("eth0 did not appear")));
    }
}

//! Network bring-up: `lo`, then the configured interface (address, link up,
//! default route) from `init.conf`, overridden by `ip=`.

use crate::kmsg;
use crate::sys::Sys;
use guest_contract::cmdline::Cmdline;
use guest_contract::init_config::{InitConfig, NetConfig};
use guest_contract::kernel_ip::IpParam;
use guest_contract::{GUEST_IFACE, Hostname, Mac};
use std::time::Duration;

/// The network settings to apply: `ip=` wins over the config file.
pub fn effective(cfg: &InitConfig, cmdline: &Cmdline) -> Option<NetConfig> {
    match &cmdline.ip {
        Some(IpParam::Off) => None,
        Some(IpParam::Auto(_)) | None => cfg.net.clone(),
        Some(IpParam::Static(s)) => {
            let base = cfg.net.as_ref();
            Some(NetConfig {
                iface: s
                    .device
                    .clone()
                    .or_else(|| base.map(|b| b.iface.clone()))
                    .unwrap_or_else(|| GUEST_IFACE.to_owned()),
                address: s.address,
                gateway: s.gateway,
                mac: base.and_then(|b| b.mac),
            })
        }
    }
}

/// The host name to set: `ip=`'s hostname field wins over the config file.
pub fn effective_hostname(cfg: &InitConfig, cmdline: &Cmdline) -> Option<Hostname> {
    if let Some(IpParam::Static(s)) = &cmdline.ip {
        if let Some(h) = s.hostname.as_deref().and_then(|h| h.parse().ok()) {
            return Some(h);
        }
    }
    cfg.hostname.clone()
}

/// Brings `lo` up.
pub fn loopback_up<S: Sys>(sys: &mut S) {
    match sys.link_up("lo") {
        Ok(()) => sys.log("lo up"),
        Err(e) => sys.log(&format!("bringing lo up failed: {e}")),
    }
}

/// Waits up to `wait` for the interface to appear in sysfs.
pub fn wait_for_iface<S: Sys>(sys: &mut S, iface: &str, wait: Duration) -> bool {
    let path = format!("/sys/class/net/{iface}");
    let deadline = sys.uptime() + wait;
    loop {
        if sys.exists(&path) {
            return true;
        }
        if sys.uptime() >= deadline {
            return false;
        }
        sys.sleep(Duration::from_millis(20));
    }
}

/// Configures the interface; every failure is logged and the boot goes on.
/// Returns true if the address is configured and the link is up.
pub fn configure<S: Sys>(sys: &mut S, net: &NetConfig, wait: Duration) -> bool {
    let iface = net.iface.as_str();
    if !wait_for_iface(sys, iface, wait) {
        sys.log(&format!(
            "{iface} did not appear within {} s; continuing without network",
            wait.as_secs()
        ));
        return false;
    }
    if let Some(mac) = net.mac {
        let current = sys
            .read_to_string(&format!("/sys/class/net/{iface}/address"))
            .ok()
            .and_then(|s| s.trim().parse::<Mac>().ok());
        if current != Some(mac) {
            match sys.set_link_mac(iface, mac) {
                Ok(()) => sys.log(&format!("{iface} MAC set to {mac}")),
                Err(e) => sys.log(&format!("setting {iface} MAC failed: {e}")),
            }
        }
    }
    // The kernel announces the address (a gratuitous ARP) when the link
    // comes up: a host that tried to reach the guest while it booted has
    // its answer at once instead of at its next ARP retry (up to 1 s).
    let notify = format!("/proc/sys/net/ipv4/conf/{iface}/arp_notify");
    if let Err(e) = sys.write_file(&notify, "1") {
        sys.log(&format!("{notify}: {e}; no gratuitous ARP"));
    }
    if let Err(e) = sys.add_address(iface, net.address.addr(), net.address.prefix()) {
        sys.log(&format!("adding {} to {iface} failed: {e}", net.address));
        return false;
    }
    if let Err(e) = sys.link_up(iface) {
        sys.log(&format!("bringing {iface} up failed: {e}"));
        return false;
    }
    if let Some(gw) = net.gateway {
        if let Err(e) = sys.add_default_route(iface, gw) {
            sys.log(&format!("default route via {gw} failed: {e}"));
        }
    }
    let gw = net
        .gateway
        .map(|g| format!(" gateway {g}"))
        .unwrap_or_default();
    sys.log(&format!("{iface} configured: {}{gw}", net.address));
    sys.log(&kmsg::net_up_marker(iface));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;
    use std::net::Ipv4Addr;

    fn cfg() -> InitConfig {
        InitConfig::parse("hostname = conf\nnet.address = 10.99.0.2/24\nnet.gateway = 10.99.0.1\nnet.mac = 00:16:3e:00:00:01\n")
            .unwrap()
    }

    #[test]
    fn ip_overrides_config() {
        let c = cfg();
        let cl = Cmdline::parse("ip=10.0.2.15::10.0.2.2:255.255.255.0:fromcmd:eth1:off");
        let n = effective(&c, &cl).unwrap();
        assert_eq!(
            (
                n.iface.as_str(),
                n.address.addr(),
                n.address.prefix(),
                n.gateway
            ),
            (
                "eth1",
                Ipv4Addr::new(10, 0, 2, 15),
                24,
                Some(Ipv4Addr::new(10, 0, 2, 2))
            )
        );
        assert_eq!(n.mac.map(Mac::octets), Some([0, 0x16, 0x3e, 0, 0, 1]));
        assert_eq!(effective_hostname(&c, &cl).as_deref(), Some("fromcmd"));
        assert_eq!(effective(&c, &Cmdline::parse("ip=off")), None);
        assert_eq!(effective(&c, &Cmdline::parse("")), c.net);
        assert_eq!(
            effective_hostname(&c, &Cmdline::parse("")).as_deref(),
            Some("conf")
        );
    }

    #[test]
    fn configure_order_and_marker() {
        let mut sys = FakeSys::new();
        sys.appear_at
            .insert("/sys/class/net/eth0".into(), Duration::from_millis(300));
        assert!(configure(
            &mut sys,
            &cfg().net.unwrap(),
            Duration::from_secs(5)
        ));
        assert_eq!(
            sys.calls,
            [
                "link_mac eth0 00:16:3e:00:00:01",
                "write /proc/sys/net/ipv4/conf/eth0/arp_notify \"1\"",
                "addr eth0 10.99.0.2/24",
                "link_up eth0",
                "route default via 10.99.0.1 dev eth0",
            ]
        );
        assert_eq!(sys.logs.last().unwrap(), "==> eth0 up <==");
        assert!(sys.now >= Duration::from_millis(300));

        // Already the right MAC (e.g. given by the Xen backend): left alone.
        let mut sys = FakeSys::new();
        sys.add_file("/sys/class/net/eth0", b"");
        sys.add_file("/sys/class/net/eth0/address", b"00:16:3e:00:00:01\n");
        assert!(configure(
            &mut sys,
            &cfg().net.unwrap(),
            Duration::from_secs(5)
        ));
        assert!(sys.calls_starting("link_mac").is_empty());
    }

    #[test]
    fn missing_iface_times_out_and_carries_on() {
        let mut sys = FakeSys::new();
        assert!(!configure(
            &mut sys,
            &cfg().net.unwrap(),
            Duration::from_secs(2)
        ));
        assert!(sys.calls.is_empty());
        assert!(sys.now >= Duration::from_secs(2) && sys.now < Duration::from_secs(3));
        assert!(sys.logs[0].contains("did not appear within 2 s"));
    }
}

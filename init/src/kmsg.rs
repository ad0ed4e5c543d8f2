//! Log lines for `/dev/kmsg`: prefixed with `imgbuild-init:` and the time
//! since boot, so they show on the console and in `dmesg`, and boot times can
//! be read off any console log.

use crate::sys::Sys;
use std::time::Duration;

/// Prefix of every line the init logs.
pub const PREFIX: &str = "imgbuild-init:";

/// The sysctl that rate-limits user-space writes to `/dev/kmsg`.
pub const DEVKMSG_SYSCTL: &str = "/proc/sys/kernel/printk_devkmsg";

/// Turns `/dev/kmsg` rate-limiting off (`printk_devkmsg = on`) so that the
/// init's lines are not dropped (the default allows a burst of 10 per 5 s
/// from user space). Needs `/proc`; a failure is ignored (the kernel may
/// predate the setting, and the lines still get through, just limited).
pub fn unlimit_devkmsg<S: Sys>(sys: &mut S) {
    let _ = sys.write_file(DEVKMSG_SYSCTL, "on\n");
}

/// The marker line logged when the network interface is configured; the
/// benchmarks search consoles for it.
pub fn net_up_marker(iface: &str) -> String {
    format!("==> {iface} up <==")
}

/// Formats a duration as seconds with microseconds, like the kernel.
pub fn stamp(up: Duration) -> String {
    format!("{:5}.{:06}", up.as_secs(), up.subsec_micros())
}

/// A `/dev/kmsg` record: log level 6 (info) so it reaches a console with
/// the default log level, one line, no longer than the kernel accepts.
pub fn kmsg_record(up: Duration, msg: &str) -> String {
    let mut line = format!("<6>{PREFIX} [{}] {}", stamp(up), msg.replace('\n', " "));
    if line.len() > 900 {
        let mut cut = 900;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line.push('\n');
    line
}

/// The same line for stderr, when `/dev/kmsg` is not available.
pub fn plain_line(up: Duration, msg: &str) -> String {
    format!("{PREFIX} [{}] {}\n", stamp(up), msg.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn devkmsg_unlimited() {
        let mut sys = FakeSys::new();
        unlimit_devkmsg(&mut sys);
        assert_eq!(
            sys.calls,
            [r#"write /proc/sys/kernel/printk_devkmsg "on\n""#]
        );
        assert_eq!(
            sys.read_to_string("/proc/sys/kernel/printk_devkmsg")
                .unwrap(),
            "on\n"
        );
        // no /proc (or an old kernel): ignored, nothing logged
        let mut sys = FakeSys::new();
        sys.fail.insert("write".into());
        unlimit_devkmsg(&mut sys);
        assert_eq!(sys.calls.len(), 1);
        assert!(sys.logs.is_empty());
    }

    #[test]
    fn records() {
        let r = kmsg_record(Duration::from_millis(1234), "eth0 up\nx");
        assert_eq!(r, "<6>imgbuild-init: [    1.234000] eth0 up x\n");
        assert!(kmsg_record(Duration::ZERO, &"é".repeat(1000)).len() <= 901);
        assert_eq!(net_up_marker("eth0"), "==> eth0 up <==");
    }
}

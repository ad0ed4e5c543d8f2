//! Signals and shutdown, with busybox init's conventions so that busybox
//! `poweroff`, `reboot`, `halt` and the kernel's `/sbin/poweroff` (from
//! `xl shutdown`) work: SIGUSR2 = power off, SIGTERM = reboot,
//! SIGUSR1 = halt, SIGINT (Ctrl-Alt-Del) = reboot.
//!
//! Blocking the signals and waiting for them are [`Sys::block_signals`] and
//! [`Sys::wait_signal`]; the loop that acts on them is
//! [`crate::services::Supervisor::round`].

use crate::mounts;
use crate::reap;
use crate::sys::{PowerAction, Sys};
use std::time::Duration;

/// The signals PID 1 handles (all blocked and taken with `sigtimedwait`).
pub const HANDLED: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGPWR,
];

/// What a signal asks for.
pub fn action_for(sig: i32) -> Option<PowerAction> {
    match sig {
        libc::SIGUSR2 | libc::SIGPWR => Some(PowerAction::PowerOff),
        libc::SIGTERM | libc::SIGINT => Some(PowerAction::Reboot),
        libc::SIGUSR1 => Some(PowerAction::Halt),
        _ => None,
    }
}

/// Brings the machine down: TERM everything, wait up to `grace`, KILL the
/// rest, sync, remount filesystems read-only, `reboot(2)`. Returns only if
/// `reboot(2)` fails.
pub fn shutdown<S: Sys>(sys: &mut S, action: PowerAction, grace: Duration) -> std::io::Error {
    sys.log(&format!("shutting down: {action:?}"));
    sys.kill_all(libc::SIGTERM);
    let deadline = sys.uptime() + grace;
    while sys.uptime() < deadline {
        reap::reap_all(sys);
        if !has_processes(sys) {
            break;
        }
        sys.sleep(Duration::from_millis(50));
    }
    sys.kill_all(libc::SIGKILL);
    sys.sleep(Duration::from_millis(50));
    reap::reap_all(sys);
    sys.sync();
    let mounts = sys.read_to_string("/proc/mounts").unwrap_or_default();
    let mut points = mounts::mount_points(&mounts);
    points.reverse();
    points.dedup();
    for p in points {
        if let Err(e) = sys.remount_ro(&p) {
            // Expected for some (e.g. busy pseudo filesystems); only report "/".
            if p == "/" {
                sys.log(&format!("remounting / read-only failed: {e}"));
            }
        }
    }
    sys.sync();
    sys.log(&format!("{action:?} now"));
    sys.power(action)
}

/// True while processes other than PID 1 and kernel threads exist, judged
/// from `/proc` (a numeric directory with a non-empty `cmdline`).
fn has_processes<S: Sys>(sys: &mut S) -> bool {
    let Ok(names) = sys.read_dir("/proc") else {
        return false;
    };
    names
        .iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && n.as_str() != "1")
        .any(|n| {
            sys.read_to_string(&format!("/proc/{n}/cmdline"))
                .is_ok_and(|c| !c.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn busybox_conventions() {
        assert_eq!(action_for(libc::SIGUSR2), Some(PowerAction::PowerOff));
        assert_eq!(action_for(libc::SIGTERM), Some(PowerAction::Reboot));
        assert_eq!(action_for(libc::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(action_for(libc::SIGUSR1), Some(PowerAction::Halt));
        assert_eq!(action_for(libc::SIGCHLD), None);
        assert_eq!(action_for(libc::SIGHUP), None);
    }

    #[test]
    fn shutdown_sequence() {
        let mut sys = FakeSys::new();
        sys.add_file(
            "/proc/mounts",
            b"/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n",
        );
        sys.add_file("/proc/55/cmdline", b"sh\0");
        let e = shutdown(&mut sys, PowerAction::PowerOff, Duration::from_millis(500));
        assert_eq!(e.to_string(), "fake power");
        assert_eq!(
            sys.calls,
            [
                "kill_all 15",
                "kill_all 9",
                "sync",
                "remount_ro /tmp",
                "remount_ro /proc",
                "remount_ro /",
                "sync",
                "power PowerOff",
            ]
        );
        // a process kept running, so the whole grace period was used
        assert!(sys.now >= Duration::from_millis(500));
    }

    #[test]
    fn shutdown_does_not_wait_without_processes() {
        let mut sys = FakeSys::new();
        sys.paths.insert("/proc/1".into());
        let _ = shutdown(&mut sys, PowerAction::Reboot, Duration::from_secs(5));
        assert!(sys.now < Duration::from_millis(200));
        assert_eq!(sys.calls.last().unwrap(), "power Reboot");
    }
}

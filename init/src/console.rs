//! The console: PID 1's own fds 0-2, which tty it is, and the shell on it.

use crate::sys::{Spawn, Sys, Tty};

/// The console device the kernel normally opens as PID 1's fds 0-2.
pub const CONSOLE: &str = "/dev/console";

/// If the kernel could not give us a console on fds 0-2 (no `/dev/console`
/// in the initramfs), opens it now; only if stdout is not open, and a
/// console that cannot be opened is left at that (there is nowhere to say so).
/// Call after `/dev` is mounted.
pub fn ensure_stdio<S: Sys>(sys: &mut S) {
    if sys.stdio_is_open() {
        return;
    }
    let _ = sys.console_to_stdio(CONSOLE);
}

/// The console device from the text of `/sys/class/tty/console/active`:
/// the last entry is the one `/dev/console` writes to (`hvc0` under Xen,
/// `ttyS0` under QEMU). `tty0` (the virtual-terminal alias) is resolved
/// through `/sys/class/tty/tty0/active`.
pub fn console_device<S: Sys>(sys: &S) -> String {
    let active = sys
        .read_to_string("/sys/class/tty/console/active")
        .unwrap_or_default();
    let Some(mut name) = active.split_whitespace().last().map(str::to_owned) else {
        return CONSOLE.to_owned();
    };
    if name == "tty0" {
        if let Some(vt) = sys
            .read_to_string("/sys/class/tty/tty0/active")
            .ok()
            .and_then(|s| s.split_whitespace().last().map(str::to_owned))
        {
            name = vt;
        }
    }
    format!("/dev/{name}")
}

/// The console shell: `shell` argv on `tty` with job control.
pub fn shell_spawn(shell: &[String], tty: &str) -> Option<Spawn> {
    (!shell.is_empty()).then(|| Spawn {
        argv: shell.to_vec(),
        tty: Tty::Controlling(tty.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn picks_last_active_console() {
        let mut sys = FakeSys::new();
        assert_eq!(console_device(&sys), "/dev/console");
        sys.add_file("/sys/class/tty/console/active", b"tty0 ttyS0\n");
        assert_eq!(console_device(&sys), "/dev/ttyS0");
        sys.add_file("/sys/class/tty/console/active", b"hvc0\n");
        assert_eq!(console_device(&sys), "/dev/hvc0");
        sys.add_file("/sys/class/tty/console/active", b"tty0\n");
        sys.add_file("/sys/class/tty/tty0/active", b"tty1\n");
        assert_eq!(console_device(&sys), "/dev/tty1");
    }

    #[test]
    fn stdio_left_alone_when_open() {
        let mut sys = FakeSys::new();
        ensure_stdio(&mut sys);
        assert!(sys.calls.is_empty());
        assert!(sys.stdio_is_open());
    }

    #[test]
    fn console_opened_onto_stdio_only_when_closed() {
        let mut sys = FakeSys::new();
        sys.stdio_closed = true;
        ensure_stdio(&mut sys);
        assert_eq!(sys.calls, ["console_to_stdio /dev/console"]);
        assert!(sys.stdio_is_open());
        // now open: a second call does nothing
        ensure_stdio(&mut sys);
        assert_eq!(sys.calls.len(), 1);
    }

    #[test]
    fn unopenable_console_is_not_fatal() {
        let mut sys = FakeSys::new();
        sys.stdio_closed = true;
        sys.fail.insert("console_to_stdio".into());
        ensure_stdio(&mut sys);
        assert_eq!(sys.calls, ["console_to_stdio /dev/console"]);
        assert!(!sys.stdio_is_open());
        assert!(sys.logs.is_empty());
    }

    #[test]
    fn shell_has_controlling_tty() {
        let s = shell_spawn(&["/bin/sh".into()], "/dev/ttyS0").unwrap();
        assert_eq!(s.tty, Tty::Controlling("/dev/ttyS0".into()));
        assert!(shell_spawn(&[], "/dev/ttyS0").is_none());
    }
}

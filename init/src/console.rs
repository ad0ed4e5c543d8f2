//! The console: which tty it is, and the shell on it.

use crate::sys::{Spawn, Sys, Tty};

/// The console device from the text of `/sys/class/tty/console/active`:
/// the last entry is the one `/dev/console` writes to (`hvc0` under Xen,
/// `ttyS0` under QEMU). `tty0` (the virtual-terminal alias) is resolved
/// through `/sys/class/tty/tty0/active`.
pub fn console_device<S: Sys>(sys: &S) -> String {
    let active = sys
        .read_to_string("/sys/class/tty/console/active")
        .unwrap_or_default();
    let Some(mut name) = active.split_whitespace().last().map(str::to_owned) else {
        return "/dev/console".to_owned();
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
    fn shell_has_controlling_tty() {
        let s = shell_spawn(&["/bin/sh".into()], "/dev/ttyS0").unwrap();
        assert_eq!(s.tty, Tty::Controlling("/dev/ttyS0".into()));
        assert!(shell_spawn(&[], "/dev/ttyS0").is_none());
    }
}

//! The system-call layer: everything the init does to the machine, and
//! everything it asks of it, goes through [`Sys`], with a real
//! implementation ([`real::RealSys`]: rustix, and libc for a few calls) and
//! a recording fake (`fake::FakeSys`, compiled only for unit tests, not into
//! the init).

#[cfg(test)]
pub mod fake;
pub mod real;

use guest_contract::Mac;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Mount flags, a subset of `MS_*` the init uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountOpts {
    /// `MS_RDONLY`.
    pub read_only: bool,
    /// `MS_NOSUID`.
    pub nosuid: bool,
    /// `MS_NODEV`.
    pub nodev: bool,
    /// `MS_NOEXEC`.
    pub noexec: bool,
}

/// How a child process gets its terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tty {
    /// stdin `/dev/null`, stdout/stderr the console; own session (no controlling tty).
    Detached,
    /// stdin/stdout/stderr this tty; own session with it as controlling
    /// terminal (`setsid` + `TIOCSCTTY`), so the shell has job control.
    Controlling(String),
}

/// A process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Terminal setup.
    pub tty: Tty,
}

/// What `reboot(2)` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// `LINUX_REBOOT_CMD_POWER_OFF` (SIGUSR2).
    PowerOff,
    /// `LINUX_REBOOT_CMD_RESTART` (SIGTERM, SIGINT).
    Reboot,
    /// `LINUX_REBOOT_CMD_HALT` (SIGUSR1).
    Halt,
}

/// A child that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    /// Its PID.
    pub pid: u32,
    /// Exit code, or 128 + signal number.
    pub code: i32,
}

/// The machine, as far as the init needs it. Paths are absolute strings.
///
/// Methods taking `&self` only ask (they are what the status service's
/// threads use, see [`crate::status::SystemProbe`]); `&mut self` ones change
/// the machine or the process, or wait.
pub trait Sys {
    /// True if this process is PID 1 (otherwise the binary is a small tool).
    fn is_pid1(&self) -> bool;
    /// Writes one log line (the real one goes to `/dev/kmsg`).
    fn log(&mut self, msg: &str);
    /// Time since boot (`CLOCK_BOOTTIME`).
    fn uptime(&self) -> Duration;
    /// Sleeps.
    fn sleep(&mut self, d: Duration);

    /// True if standard output (fd 1) is open.
    fn stdio_is_open(&self) -> bool;
    /// Opens the console device `path` read-write and puts it on those of
    /// fds 0, 1 and 2 that are closed (keeping it open if it lands on one
    /// of them); fails only if it cannot be opened.
    fn console_to_stdio(&mut self, path: &str) -> io::Result<()>;

    /// Blocks [`crate::signals::HANDLED`] in this thread (and the threads it
    /// starts later); children get an empty mask back before exec.
    fn block_signals(&mut self);
    /// Waits up to `timeout` for one of the blocked signals; its number.
    fn wait_signal(&mut self, timeout: Duration) -> Option<i32>;
    /// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of rebooting at once
    /// (`reboot(LINUX_REBOOT_CMD_CAD_OFF)`); failure is ignored.
    fn cad_to_signal(&mut self);

    /// `mkdir -p` with mode 0755.
    fn mkdir_p(&mut self, path: &str) -> io::Result<()>;
    /// True if the path exists (follows symlinks).
    fn exists(&self, path: &str) -> bool;
    /// True if `path` is a mount point (its device differs from its parent's).
    fn is_mount_point(&self, path: &str) -> bool;
    /// Reads a whole (small) file.
    fn read_to_string(&self, path: &str) -> io::Result<String>;
    /// Reads `len` bytes at `offset` (for superblocks).
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Names in a directory, sorted.
    fn read_dir(&self, path: &str) -> io::Result<Vec<String>>;
    /// Writes `contents` to the file at `path`, creating or truncating it
    /// (for settings under `/proc/sys`).
    fn write_file(&mut self, path: &str, contents: &str) -> io::Result<()>;

    /// `mount(2)`.
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> io::Result<()>;
    /// `mount --move`.
    fn move_mount(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// `mount -o remount,ro`.
    fn remount_ro(&mut self, target: &str) -> io::Result<()>;
    /// Deletes everything on the filesystem of `/` without crossing mount
    /// points (switch_root's freeing of the initramfs).
    fn clear_rootfs(&mut self) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&mut self, path: &str) -> io::Result<()>;
    /// `chroot(2)`.
    fn chroot(&mut self, path: &str) -> io::Result<()>;
    /// `execv`; only returns on failure.
    fn exec(&mut self, argv: &[&str]) -> io::Error;

    /// `finit_module(2)` of the file at `path`.
    fn load_module(&mut self, path: &str) -> io::Result<()>;
    /// `sethostname(2)`.
    fn set_hostname(&mut self, name: &str) -> io::Result<()>;

    /// Sets a link's MAC address (while it is down).
    fn set_link_mac(&mut self, iface: &str, mac: Mac) -> io::Result<()>;
    /// Sets a link up.
    fn link_up(&mut self, iface: &str) -> io::Result<()>;
    /// Adds an IPv4 address with prefix to a link.
    fn add_address(&mut self, iface: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()>;
    /// Adds the default route via `gateway` on `iface`.
    fn add_default_route(&mut self, iface: &str, gateway: Ipv4Addr) -> io::Result<()>;
    /// The IPv4 addresses (with prefix length) on `iface`, in the kernel's
    /// order; fails if the link or the kernel cannot be asked.
    fn addresses(&self, iface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>>;

    /// Starts a process; returns its PID.
    fn spawn(&mut self, spawn: &Spawn) -> io::Result<u32>;
    /// Reaps one exited child without blocking.
    fn reap_one(&mut self) -> Option<Exited>;
    /// Sends `signal` to every process but the init (`kill(-1, sig)`).
    fn kill_all(&mut self, signal: i32);
    /// `sync(2)`.
    fn sync(&mut self);
    /// `reboot(2)`; only returns on failure.
    fn power(&mut self, action: PowerAction) -> io::Error;
}

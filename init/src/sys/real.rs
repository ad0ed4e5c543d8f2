//! The real [`Sys`]: rustix system calls on the running machine.

use super::{Exited, MountOpts, PowerAction, Spawn, Sys, Tty};
use crate::kmsg;
use crate::netlink::Netlink;
use guest_contract::Mac;
use rustix::fd::{AsRawFd as _, BorrowedFd};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `PATH` for everything the init starts.
pub const PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin";

/// The real machine. It is `Send + Sync` (the status service's threads own
/// one each, for its `&self` methods).
#[derive(Debug, Default)]
pub struct RealSys {
    kmsg: Option<File>,
    /// Lines logged before `/dev/kmsg` existed (before devtmpfs is mounted).
    early: Vec<String>,
}

/// How many lines are kept for `/dev/kmsg` before it exists.
const EARLY_LINES: usize = 32;

// The status service moves a `RealSys` into its threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RealSys>();
};

impl RealSys {
    /// A new handle; `/dev/kmsg` is opened on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

fn mount_flags(o: MountOpts) -> rustix::mount::MountFlags {
    use rustix::mount::MountFlags as F;
    let mut f = F::empty();
    if o.read_only {
        f |= F::RDONLY;
    }
    if o.nosuid {
        f |= F::NOSUID;
    }
    if o.nodev {
        f |= F::NODEV;
    }
    if o.noexec {
        f |= F::NOEXEC;
    }
    f
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

/// Removes everything below `dir` that lives on device `dev`.
fn clear_dir(dir: &std::path::Path, dev: u64) -> io::Result<()> {
    let mut first_err = None;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        if md.dev() != dev {
            continue; // a mount point (the new root, moved /dev, ...)
        }
        let r = if md.is_dir() {
            clear_dir(&path, dev).and_then(|()| fs::remove_dir(&path))
        } else {
            fs::remove_file(&path)
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn env_command(argv: &[String]) -> io::Result<Command> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/")
        .env("TERM", "vt102")
        .current_dir("/");
    // SAFETY: the closure runs in the forked child before exec and only calls
    // `unblock_all_signals`, which makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            unblock_all_signals();
            Ok(())
        });
    }
    Ok(cmd)
}

/// The signals PID 1 takes with `sigtimedwait` as a `sigset_t`.
fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is a plain bit array; sigemptyset initialises it
    // and sigaddset only sets bits of valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in crate::signals::HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Empties the signal mask. PID 1 blocks the signals it takes with
/// `sigtimedwait`, and a blocked mask survives fork and exec (std's spawn no
/// longer resets it): a shell started with SIGCHLD blocked never hears of its
/// jobs. Called in each child before exec; async-signal-safe.
fn unblock_all_signals() {
    // SAFETY: `set` is a plain bit array that sigemptyset initialises;
    // sigprocmask with a null old-set pointer is allowed and
    // async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

impl Sys for RealSys {
    fn is_pid1(&self) -> bool {
        rustix::process::getpid().is_init()
    }

    fn log(&mut self, msg: &str) {
        let up = self.uptime();
        if self.kmsg.is_none() {
            self.kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
            if let Some(f) = &mut self.kmsg {
                for line in self.early.drain(..) {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
        let keep_early =
            self.kmsg.is_none() && self.early.len() < EARLY_LINES && !self.exists("/dev/kmsg");
        let ok = match &mut self.kmsg {
            Some(f) => f.write_all(kmsg::kmsg_record(up, msg).as_bytes()).is_ok(),
            None if keep_early => {
                self.early.push(kmsg::kmsg_record(up, msg));
                true
            }
            None => false,
        };
        if !ok {
            let _ = io::stderr().write_all(kmsg::plain_line(up, msg).as_bytes());
        }
    }

    fn uptime(&self) -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn stdio_is_open(&self) -> bool {
        rustix::io::fcntl_getfd(rustix::stdio::stdout()).is_ok()
    }

    fn console_to_stdio(&mut self, path: &str) -> io::Result<()> {
        let con = OpenOptions::new().read(true).write(true).open(path)?;
        let fd = con.as_raw_fd();
        for target in 0..3 {
            // SAFETY: fcntl(F_GETFD) and dup2(2) take plain integers and
            // touch no memory of ours. Only descriptors 0-2 that are closed
            // are filled, so one already in use (/dev/kmsg, opened before
            // /dev/console could be) keeps what it is.
            unsafe {
                if target != fd && libc::fcntl(target, libc::F_GETFD) == -1 {
                    libc::dup2(fd, target);
                }
            }
        }
        if fd <= 2 {
            // The console itself became a standard descriptor: keep it open.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(con);
        }
        Ok(())
    }

    fn block_signals(&mut self) {
        let set = handled_set();
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        unsafe {
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }

    fn wait_signal(&mut self, timeout: Duration) -> Option<i32> {
        let set = handled_set();
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(1),
            tv_nsec: libc::c_long::from(i32::try_from(timeout.subsec_nanos()).unwrap_or(0)),
        };
        // SAFETY: `set` and `ts` are initialised and outlive the call; a null
        // siginfo pointer is allowed.
        let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        (r > 0).then_some(r)
    }

    fn cad_to_signal(&mut self) {
        let _ = rustix::system::reboot(rustix::system::RebootCommand::CadOff);
    }

    fn mkdir_p(&mut self, path: &str) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }

    fn exists(&self, path: &str) -> bool {
        fs::metadata(path).is_ok()
    }

    fn is_mount_point(&self, path: &str) -> bool {
        let (Ok(me), Ok(parent)) = (fs::metadata(path), fs::metadata(format!("{path}/.."))) else {
            return false;
        };
        me.dev() != parent.dev() || me.ino() == parent.ino()
    }

    fn read_to_string(&self, path: &str) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = File::open(path)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    fn write_file(&mut self, path: &str, contents: &str) -> io::Result<()> {
        fs::write(path, contents)
    }

    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> io::Result<()> {
        let data = cstring(data)?;
        let data = (!data.as_bytes().is_empty()).then_some(data.as_c_str());
        rustix::mount::mount(source, target, fstype, mount_flags(opts), data)?;
        Ok(())
    }

    fn move_mount(&mut self, from: &str, to: &str) -> io::Result<()> {
        rustix::mount::mount_move(from, to)?;
        Ok(())
    }

    fn remount_ro(&mut self, target: &str) -> io::Result<()> {
        rustix::mount::mount_remount(target, rustix::mount::MountFlags::RDONLY, "")?;
        Ok(())
    }

    fn clear_rootfs(&mut self) -> io::Result<()> {
        let dev = fs::symlink_metadata("/")?.dev();
        clear_dir(std::path::Path::new("/"), dev)
    }

    fn chdir(&mut self, path: &str) -> io::Result<()> {
        rustix::process::chdir(path)?;
        Ok(())
    }

    fn chroot(&mut self, path: &str) -> io::Result<()> {
        rustix::process::chroot(path)?;
        Ok(())
    }

    fn exec(&mut self, argv: &[&str]) -> io::Error {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        match env_command(&argv) {
            Ok(mut cmd) => cmd.exec(),
            Err(e) => e,
        }
    }

    fn load_module(&mut self, path: &str) -> io::Result<()> {
        let f = File::open(path)?;
        // MODULE_INIT_COMPRESSED_FILE: let the kernel decompress .ko.xz/.zst/.gz.
        let flags = if path.ends_with(".ko") { 0 } else { 4 };
        rustix::system::finit_module(&f, c"", flags)?;
        Ok(())
    }

    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        rustix::system::sethostname(name.as_bytes())?;
        Ok(())
    }

    fn set_link_mac(&mut self, iface: &str, mac: Mac) -> io::Result<()> {
        let idx = ifindex(iface)?;
        Netlink::open()?.set_link(idx, false, Some(mac.octets()))
    }

    fn link_up(&mut self, iface: &str) -> io::Result<()> {
        let idx = ifindex(iface)?;
        Netlink::open()?.set_link(idx, true, None)
    }

    fn add_address(&mut self, iface: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let idx = ifindex(iface)?;
        Netlink::open()?.add_address(idx, addr, prefix)
    }

    fn add_default_route(&mut self, iface: &str, gateway: Ipv4Addr) -> io::Result<()> {
        let idx = ifindex(iface)?;
        Netlink::open()?.add_default_route(idx, gateway)
    }

    fn addresses(&self, iface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let idx = ifindex(iface)?;
        let all = Netlink::open()?.addresses()?;
        Ok(all
            .into_iter()
            .filter(|(i, _, _)| *i == idx)
            .map(|(_, a, p)| (a, p))
            .collect())
    }

    fn spawn(&mut self, spawn: &Spawn) -> io::Result<u32> {
        let mut cmd = env_command(&spawn.argv)?;
        match &spawn.tty {
            Tty::Controlling(dev) => {
                let tty = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(dev)?;
                cmd.stdin(tty.try_clone()?)
                    .stdout(tty.try_clone()?)
                    .stderr(tty);
                // SAFETY: the closure runs in the forked child before exec and
                // only makes two raw system calls (setsid, ioctl), which are
                // async-signal-safe; it allocates nothing and takes no locks.
                unsafe {
                    cmd.pre_exec(|| {
                        rustix::process::setsid()?;
                        // SAFETY: fd 0 is the tty std just dup2'ed into place
                        // and stays open for the duration of the call.
                        let stdin = BorrowedFd::borrow_raw(0);
                        rustix::process::ioctl_tiocsctty(stdin)?;
                        Ok(())
                    });
                }
            }
            Tty::Detached => {
                cmd.stdin(Stdio::null());
                match OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open("/dev/console")
                {
                    Ok(con) => {
                        cmd.stdout(con.try_clone()?).stderr(con);
                    }
                    Err(_) => {
                        cmd.stdout(Stdio::null()).stderr(Stdio::null());
                    }
                }
                // SAFETY: runs in the forked child before exec and only makes
                // the async-signal-safe setsid system call.
                unsafe {
                    cmd.pre_exec(|| {
                        rustix::process::setsid()?;
                        Ok(())
                    });
                }
            }
        }
        let child = cmd.spawn()?;
        // The child is reaped by `reap_one` (waitpid(-1)), never via `Child`.
        Ok(child.id())
    }

    fn reap_one(&mut self) -> Option<Exited> {
        use rustix::process::{WaitOptions, wait};
        // wait4(-1, WNOHANG): any child, whatever its process group (rustix's
        // `waitpid(None, ..)` would be pid 0, our own group only).
        let (pid, status) = wait(WaitOptions::NOHANG).ok()??;
        let code = status
            .exit_status()
            .or_else(|| status.terminating_signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Some(Exited {
            pid: pid.as_raw_nonzero().get().unsigned_abs(),
            code,
        })
    }

    fn kill_all(&mut self, signal: i32) {
        // SAFETY: kill(2) takes plain integers; -1 means every process
        // this one may signal except itself (PID 1).
        unsafe {
            libc::kill(-1, signal);
        }
    }

    fn sync(&mut self) {
        rustix::fs::sync();
    }

    fn power(&mut self, action: PowerAction) -> io::Error {
        use rustix::system::RebootCommand as R;
        let cmd = match action {
            PowerAction::PowerOff => R::PowerOff,
            PowerAction::Reboot => R::Restart,
            PowerAction::Halt => R::Halt,
        };
        match rustix::system::reboot(cmd) {
            Ok(()) => io::Error::other("reboot(2) returned"),
            Err(e) => e.into(),
        }
    }
}

/// The interface index of `iface`, from sysfs.
fn ifindex(iface: &str) -> io::Result<u32> {
    let s = fs::read_to_string(format!("/sys/class/net/{iface}/ifindex"))?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex in sysfs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Children start their own session (setsid); reaping must still find
    /// them (regression: `waitpid(0)` only sees our own process group).
    #[test]
    fn reaps_children_in_other_sessions() {
        let mut sys = RealSys::new();
        let pid = sys
            .spawn(&Spawn {
                argv: vec!["/bin/sh".into(), "-c".into(), "exit 3".into()],
                tty: Tty::Detached,
            })
            .unwrap();
        let mut got = None;
        for _ in 0..500 {
            if let Some(e) = sys.reap_one() {
                got = Some(e);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got, Some(Exited { pid, code: 3 }));
    }
}

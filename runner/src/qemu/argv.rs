//! QEMU's command line, one small pure function per concern.
//!
//! Source and destination of a migration must get identical devices; building
//! both from the same [`VmConfig`] (differing only in tap, logs, sockets and
//! `incoming`) guarantees it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Where the serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// Only to the log file.
    LogOnly,
    /// To the terminal (stdio, Ctrl-A x quits) and to the log file.
    TerminalAndLog,
    /// To a unix socket QEMU listens on (for programs driving the shell) and to the log file.
    SocketAndLog(PathBuf),
}

/// Everything that goes on one QEMU command line.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub accel: Accel,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// `-bios`: `None` is QEMU's default (SeaBIOS).
    pub firmware: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub rootfs: PathBuf,
    /// Further disks, attached read-only after the root disk (vdb, vdc, …).
    pub extra_disks: Vec<PathBuf>,
    /// Further disks attached read-write after those.
    pub writable_disks: Vec<PathBuf>,
    /// The tap the NIC uses; `None`: no NIC.
    pub tap: Option<String>,
    pub mac: String,
    pub qmp_socket: PathBuf,
    pub console_log: PathBuf,
    pub console: Console,
    /// Start with `-incoming defer` (a migration destination).
    pub incoming: bool,
}

/// Escapes a path for a QEMU option value (commas are doubled).
pub fn opt_path(p: &Path) -> OsString {
    let mut out = OsString::new();
    for (i, part) in p.as_os_str().as_bytes().split(|b| *b == b',').enumerate() {
        if i > 0 {
            out.push(",,");
        }
        out.push(OsStr::from_bytes(part));
    }
    out
}

fn joined(parts: &[&OsStr]) -> OsString {
    let mut s = OsString::new();
    for p in parts {
        s.push(p);
    }
    s
}

fn args(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Machine type, accelerator, CPU, memory and vCPUs; no default devices, no display.
pub fn machine(accel: Accel, memory_mib: u32, vcpus: u32) -> Vec<OsString> {
    let mut a = args(&["-machine", "q35", "-accel", accel.name(), "-cpu", "max"]);
    a.extend(args(&[
        "-m",
        &format!("{memory_mib}M"),
        "-smp",
        &vcpus.to_string(),
    ]));
    a.extend(args(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]));
    a
}

/// The firmware instead of QEMU's default.
pub fn firmware(path: &Path) -> Vec<OsString> {
    vec!["-bios".into(), path.into()]
}

/// Direct kernel boot: kernel, initramfs and command line.
pub fn kernel(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<OsString> {
    vec![
        "-kernel".into(),
        kernel.into(),
        "-initrd".into(),
        initrd.into(),
        "-append".into(),
        cmdline.into(),
    ]
}

/// The root image on virtio-blk. Shared by source and destination of a
/// migration (shared storage): image locking is off so both may open it, and
/// the host page cache is used, which both QEMUs on one host see coherently.
pub fn drives(rootfs: &Path) -> Vec<OsString> {
    vec![
        "-blockdev".into(),
        joined(&[
            OsStr::new("driver=file,node-name=root-file,locking=off,cache.direct=off,filename="),
            &opt_path(rootfs),
        ]),
        "-blockdev".into(),
        "driver=raw,node-name=root,file=root-file".into(),
        "-device".into(),
        "virtio-blk-pci,drive=root,id=root-disk".into(),
    ]
}

/// A further disk on virtio-blk, read-only unless `writable`; `index` 1 is
/// the guest's vdb.
pub fn extra_disk(index: usize, path: &Path, writable: bool) -> Vec<OsString> {
    let ro = if writable { "" } else { ",read-only=on" };
    vec![
        "-blockdev".into(),
        joined(&[
            OsStr::new(&format!(
                "driver=file,node-name=disk{index}-file{ro},filename="
            )),
            &opt_path(path),
        ]),
        "-blockdev".into(),
        format!("driver=raw,node-name=disk{index}{ro},file=disk{index}-file").into(),
        "-device".into(),
        format!("virtio-blk-pci,drive=disk{index},id=disk{index}").into(),
    ]
}

/// A tap device (already created in the namespace) and a virtio NIC with the guest's MAC.
pub fn network(tap: &str, mac: &str) -> Vec<OsString> {
    args(&[
        "-netdev",
        &format!("tap,id=net0,ifname={tap},script=no,downscript=no"),
        "-device",
        &format!("virtio-net-pci,netdev=net0,mac={mac},id=nic0"),
    ])
}

/// The QMP control socket (a unix socket QEMU listens on).
pub fn qmp(socket: &Path) -> Vec<OsString> {
    vec![
        "-chardev".into(),
        joined(&[
            OsStr::new("socket,id=qmp,server=on,wait=off,path="),
            &opt_path(socket),
        ]),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]
}

/// The serial console (ttyS0): always logged, and on the terminal for `boot`.
pub fn serial(log: &Path, console: &Console) -> Vec<OsString> {
    let chardev = match console {
        Console::LogOnly => joined(&[OsStr::new("file,id=ser0,path="), &opt_path(log)]),
        Console::TerminalAndLog => joined(&[
            OsStr::new("stdio,id=ser0,mux=on,signal=off,logfile="),
            &opt_path(log),
        ]),
        Console::SocketAndLog(sock) => joined(&[
            OsStr::new("socket,id=ser0,server=on,wait=off,path="),
            &opt_path(sock),
            OsStr::new(",logfile="),
            &opt_path(log),
        ]),
    };
    let mut a = vec![
        "-chardev".into(),
        chardev,
        "-serial".into(),
        "chardev:ser0".into(),
    ];
    if *console == Console::TerminalAndLog {
        // The mux's monitor gives Ctrl-A c; Ctrl-A x quits.
        a.extend(args(&["-mon", "chardev=ser0,mode=readline"]));
    }
    a
}

/// A migration destination waiting for `migrate-incoming`.
pub fn incoming_defer() -> Vec<OsString> {
    args(&["-incoming", "defer"])
}

/// The whole argument list (without the program name).
pub fn argv(c: &VmConfig) -> Vec<OsString> {
    let mut a = machine(c.accel, c.memory_mib, c.vcpus);
    if let Some(f) = &c.firmware {
        a.extend(firmware(f));
    }
    a.extend(kernel(&c.kernel, &c.initrd, &c.cmdline));
    a.extend(drives(&c.rootfs));
    for (i, d) in c.extra_disks.iter().enumerate() {
        a.extend(extra_disk(i + 1, d, false));
    }
    for (i, d) in c.writable_disks.iter().enumerate() {
        a.extend(extra_disk(c.extra_disks.len() + i + 1, d, true));
    }
    if let Some(tap) = &c.tap {
        a.extend(network(tap, &c.mac));
    }
    a.extend(qmp(&c.qmp_socket));
    a.extend(serial(&c.console_log, &c.console));
    if c.incoming {
        a.extend(incoming_defer());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &[OsString]) -> String {
        v.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn config() -> VmConfig {
        VmConfig {
            accel: Accel::Tcg,
            memory_mib: 512,
            vcpus: 1,
            firmware: None,
            kernel: "/o/vmlinuz".into(),
            initrd: "/o/initrd.img".into(),
            cmdline: "root=/dev/vda ro console=ttyS0".into(),
            rootfs: "/o/rootfs.img".into(),
            extra_disks: Vec::new(),
            writable_disks: Vec::new(),
            tap: Some("tap0".into()),
            mac: "00:16:3e:00:00:01".into(),
            qmp_socket: "/run/x/a.qmp".into(),
            console_log: "/logs/a.log".into(),
            console: Console::LogOnly,
            incoming: false,
        }
    }

    #[test]
    fn machine_snapshot() {
        assert_eq!(
            show(&machine(Accel::Tcg, 512, 2)),
            "-machine q35 -accel tcg -cpu max -m 512M -smp 2 -nodefaults -no-user-config -display none -no-reboot"
        );
    }

    #[test]
    fn drives_snapshot_shared_storage() {
        assert_eq!(
            show(&drives(Path::new("/o/root,fs.img"))),
            "-blockdev driver=file,node-name=root-file,locking=off,cache.direct=off,filename=/o/root,,fs.img \
             -blockdev driver=raw,node-name=root,file=root-file -device virtio-blk-pci,drive=root,id=root-disk"
        );
    }

    #[test]
    fn network_snapshot() {
        assert_eq!(
            show(&network("tap1", "00:16:3e:aa:bb:cc")),
            "-netdev tap,id=net0,ifname=tap1,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=00:16:3e:aa:bb:cc,id=nic0"
        );
    }

    #[test]
    fn qmp_and_serial_snapshots() {
        assert_eq!(
            show(&qmp(Path::new("/run/x/a.qmp"))),
            "-chardev socket,id=qmp,server=on,wait=off,path=/run/x/a.qmp -mon chardev=qmp,mode=control"
        );
        assert_eq!(
            show(&serial(Path::new("/l/a.log"), &Console::LogOnly)),
            "-chardev file,id=ser0,path=/l/a.log -serial chardev:ser0"
        );
        assert_eq!(
            show(&serial(Path::new("/l/a.log"), &Console::TerminalAndLog)),
            "-chardev stdio,id=ser0,mux=on,signal=off,logfile=/l/a.log -serial chardev:ser0 -mon chardev=ser0,mode=readline"
        );
        assert_eq!(
            show(&serial(
                Path::new("/l/a.log"),
                &Console::SocketAndLog("/r/s".into())
            )),
            "-chardev socket,id=ser0,server=on,wait=off,path=/r/s,logfile=/l/a.log -serial chardev:ser0"
        );
    }

    #[test]
    fn extra_disks_are_read_only_and_numbered() {
        let mut c = config();
        c.extra_disks = vec!["/t/data.img".into()];
        c.tap = None;
        let a = show(&argv(&c));
        assert!(
            a.contains(
                "-blockdev driver=file,node-name=disk1-file,read-only=on,filename=/t/data.img \
             -blockdev driver=raw,node-name=disk1,read-only=on,file=disk1-file \
             -device virtio-blk-pci,drive=disk1,id=disk1 -chardev socket,id=qmp"
            ),
            "{a}"
        );
        assert!(!a.contains("-netdev"), "{a}");
        c.writable_disks = vec!["/t/rw.img".into()];
        let a = show(&argv(&c));
        assert!(
            a.contains(
                "-blockdev driver=file,node-name=disk2-file,filename=/t/rw.img \
             -blockdev driver=raw,node-name=disk2,file=disk2-file \
             -device virtio-blk-pci,drive=disk2,id=disk2"
            ),
            "{a}"
        );
    }

    #[test]
    fn whole_argv_snapshot() {
        let mut c = config();
        c.incoming = true;
        assert_eq!(
            show(&argv(&c)),
            "-machine q35 -accel tcg -cpu max -m 512M -smp 1 -nodefaults -no-user-config -display none -no-reboot \
             -kernel /o/vmlinuz -initrd /o/initrd.img -append root=/dev/vda ro console=ttyS0 \
             -blockdev driver=file,node-name=root-file,locking=off,cache.direct=off,filename=/o/rootfs.img \
             -blockdev driver=raw,node-name=root,file=root-file -device virtio-blk-pci,drive=root,id=root-disk \
             -netdev tap,id=net0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=00:16:3e:00:00:01,id=nic0 \
             -chardev socket,id=qmp,server=on,wait=off,path=/run/x/a.qmp -mon chardev=qmp,mode=control \
             -chardev file,id=ser0,path=/logs/a.log -serial chardev:ser0 -incoming defer"
        );
    }

    #[test]
    fn firmware_follows_the_machine() {
        let mut c = config();
        c.firmware = Some("/usr/share/qemu/qboot.rom".into());
        let a = show(&argv(&c));
        assert!(
            a.contains("-no-reboot -bios /usr/share/qemu/qboot.rom -kernel /o/vmlinuz"),
            "{a}"
        );
    }

    #[test]
    fn source_and_destination_differ_only_where_expected() {
        let src = config();
        let mut dst = config();
        dst.tap = Some("tap1".into());
        dst.qmp_socket = "/run/x/b.qmp".into();
        dst.console_log = "/logs/b.log".into();
        dst.incoming = true;
        let (a, b) = (argv(&src), argv(&dst));
        let diff: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
        assert_eq!(diff.len(), 5, "{diff:?}");
    }
}

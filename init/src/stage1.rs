//! Stage 1, in the initramfs: mount the kernel filesystems, load the block
//! drivers, wait for the root device, mount it, move the kernel filesystems
//! into it, free the initramfs, switch root and exec `/sbin/init`.

use crate::mounts::{self, KERNEL_FS};
use crate::sys::{MountOpts, Sys};
use crate::{modules, rootdev};
use guest_contract::cmdline::{Cmdline, RootSpec};
use guest_contract::init_config::InitConfig;
use std::time::Duration;

/// Where the root filesystem is mounted before the switch.
pub const NEW_ROOT: &str = "/newroot";
/// The program stage 1 hands over to.
pub const NEXT_INIT: &str = "/sbin/init";

/// Mounts `/proc`, `/sys` and `/dev` (the first thing PID 1 does).
pub fn mount_kernel_fs<S: Sys>(sys: &mut S) {
    mounts::mount_all(sys, &KERNEL_FS);
}

/// Runs stage 1 after [`mount_kernel_fs`]. On success it does not return
/// (the real `exec` replaces the process); it returns the reason it could
/// not switch, and the caller starts a rescue shell.
pub fn run<S: Sys>(sys: &mut S, cfg: &InitConfig, cmdline: &Cmdline) -> String {
    for w in &cmdline.warnings {
        sys.log(&format!("kernel command line: {w}"));
    }
    modules::load_all(sys, &cfg.kernel_version, &cfg.stage1_modules);

    let Some(spec) = &cmdline.root else {
        return "no root= on the kernel command line".to_owned();
    };
    let wait_secs = cmdline
        .init_opt("root_wait")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(cfg.root_wait_secs);
    let Some(dev) = wait_for_root(sys, spec, Duration::from_secs(u64::from(wait_secs))) else {
        return format!(
            "root device {} did not appear within {wait_secs} s (block devices: {})",
            spec,
            sys.read_dir("/sys/class/block")
                .unwrap_or_default()
                .join(" ")
        );
    };
    sys.log(&format!("root device {} is {dev}", spec));

    if let Err(e) = sys.mkdir_p(NEW_ROOT) {
        return format!("mkdir {NEW_ROOT}: {e}");
    }
    let fstype = cmdline.rootfstype.as_deref().unwrap_or("ext4");
    ensure_filesystem(sys, &cfg.kernel_version, fstype);
    let opts = MountOpts {
        read_only: !cmdline.read_write,
        ..MountOpts::default()
    };
    let data = cmdline.rootflags.as_deref().unwrap_or("");
    if let Err(e) = sys.mount(&dev, NEW_ROOT, fstype, opts, data) {
        return format!("mounting {dev} ({fstype}) on {NEW_ROOT} failed: {e}");
    }
    sys.log(&format!(
        "mounted {dev} on {NEW_ROOT} ({fstype}, {})",
        if cmdline.read_write { "rw" } else { "ro" }
    ));
    let next = format!("{NEW_ROOT}{NEXT_INIT}");
    if !sys.exists(&next) {
        return format!("the root filesystem on {dev} has no {NEXT_INIT}");
    }

    switch_root(sys)
}

/// If the kernel does not know `fstype` yet (`/proc/filesystems`), loads it
/// (and, for ext4, the crc32c it needs, which the kernel would otherwise ask
/// a missing `modprobe` for) through `modules.dep`. Debian's kernels build
/// ext4 as a module; the builder normally lists it among the stage-1
/// modules, so this only helps when it did not.
pub fn ensure_filesystem<S: Sys>(sys: &mut S, kver: &str, fstype: &str) {
    let Ok(known) = sys.read_to_string("/proc/filesystems") else {
        return;
    };
    if known
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
    {
        return;
    }
    sys.log(&format!(
        "filesystem {fstype} is not in the kernel yet; loading it"
    ));
    let mut wanted = Vec::new();
    if fstype == "ext4" {
        wanted.push("crc32c_generic".to_owned());
    }
    wanted.push(fstype.to_owned());
    modules::load_all(sys, kver, &wanted);
}

/// Waits for the root device, polling every 20 ms.
pub fn wait_for_root<S: Sys>(sys: &mut S, spec: &RootSpec, wait: Duration) -> Option<String> {
    let deadline = sys.uptime() + wait;
    let mut said = false;
    loop {
        if let Some(dev) = rootdev::find(sys, spec) {
            return Some(dev);
        }
        if sys.uptime() >= deadline {
            return None;
        }
        if !said {
            sys.log(&format!(
                "waiting up to {} s for root device {}",
                wait.as_secs(),
                spec
            ));
            said = true;
        }
        sys.sleep(Duration::from_millis(20));
    }
}

/// switch_root: move the kernel filesystems into the new root, delete the
/// initramfs contents, make the new root `/`, and exec `/sbin/init`.
fn switch_root<S: Sys>(sys: &mut S) -> String {
    for m in &KERNEL_FS {
        let to = format!("{NEW_ROOT}{}", m.target);
        if !sys.exists(&to) {
            sys.log(&format!(
                "{to} is missing in the root filesystem; {} not moved",
                m.target
            ));
            continue;
        }
        if let Err(e) = sys.move_mount(m.target, &to) {
            sys.log(&format!("moving {} to {to} failed: {e}", m.target));
        }
    }
    // Free the initramfs: it is RAM that nothing can reach after the switch.
    if let Err(e) = sys.clear_rootfs() {
        sys.log(&format!("freeing the initramfs was incomplete: {e}"));
    }
    if let Err(e) = sys.chdir(NEW_ROOT) {
        return format!("chdir {NEW_ROOT}: {e}");
    }
    if let Err(e) = sys.move_mount(".", "/") {
        return format!("moving {NEW_ROOT} to /: {e}");
    }
    if let Err(e) = sys.chroot(".") {
        return format!("chroot: {e}");
    }
    if let Err(e) = sys.chdir("/") {
        return format!("chdir /: {e}");
    }
    sys.log(&format!("switched root; exec {NEXT_INIT}"));
    let e = sys.exec(&[NEXT_INIT]);
    format!("exec {NEXT_INIT} failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const K: &str = "6.1.0-56-amd64";

    fn cfg() -> InitConfig {
        InitConfig::parse(&format!(
            "stage = 1\nkernel_version = {K}\nroot_wait_secs = 3\nstage1_module = kernel/drivers/block/virtio_blk.ko\n"
        ))
        .unwrap()
    }

    fn machine() -> FakeSys {
        let mut sys = FakeSys::new();
        sys.paths.insert(format!(
            "/lib/modules/{K}/kernel/drivers/block/virtio_blk.ko"
        ));
        for p in [
            "/newroot/sbin/init",
            "/newroot/proc",
            "/newroot/sys",
            "/newroot/dev",
        ] {
            sys.paths.insert(p.into());
        }
        sys
    }

    #[test]
    fn full_switch_in_order() {
        let mut sys = machine();
        sys.appear_at
            .insert("/dev/vda".into(), Duration::from_millis(500));
        mount_kernel_fs(&mut sys);
        let why = run(
            &mut sys,
            &cfg(),
            &Cmdline::parse("root=/dev/vda ro console=ttyS0"),
        );
        assert!(why.starts_with("exec /sbin/init failed"), "{why}");
        assert_eq!(
            sys.calls,
            [
                "mkdir /proc",
                "mount proc /proc proc nosuid,nodev,noexec",
                "mkdir /sys",
                "mount sysfs /sys sysfs nosuid,nodev,noexec",
                "mkdir /dev",
                "mount devtmpfs /dev devtmpfs nosuid mode=0755",
                "load_module /lib/modules/6.1.0-56-amd64/kernel/drivers/block/virtio_blk.ko",
                "mkdir /newroot",
                "mount /dev/vda /newroot ext4 ro",
                "move /proc /newroot/proc",
                "move /sys /newroot/sys",
                "move /dev /newroot/dev",
                "clear_rootfs",
                "chdir /newroot",
                "move . /",
                "chroot .",
                "chdir /",
                "exec /sbin/init",
            ]
        );
        assert!(sys.now >= Duration::from_millis(500));
    }

    #[test]
    fn rw_label_and_rootflags() {
        let mut sys = machine();
        sys.paths.insert("/sys/class/block/xvda".into());
        sys.add_file(
            "/dev/xvda",
            &crate::rootdev::fake_superblock("busybox-root", [3; 16]),
        );
        let why = run(
            &mut sys,
            &cfg(),
            &Cmdline::parse("root=LABEL=busybox-root rw rootflags=noatime"),
        );
        assert!(why.starts_with("exec"), "{why}");
        assert!(
            sys.position("mount /dev/xvda /newroot ext4 defaults noatime")
                .is_some()
        );
    }

    #[test]
    fn root_never_appears() {
        let mut sys = machine();
        sys.paths.insert("/sys/class/block/sr0".into());
        let why = run(
            &mut sys,
            &cfg(),
            &Cmdline::parse("root=/dev/xvda init.root_wait=1"),
        );
        assert_eq!(
            why,
            "root device /dev/xvda did not appear within 1 s (block devices: sr0)"
        );
        assert!(sys.now >= Duration::from_secs(1) && sys.now < Duration::from_secs(2));
        assert!(sys.calls_starting("mount /dev").is_empty());
        assert!(sys.calls_starting("exec").is_empty());
    }

    #[test]
    fn missing_root_param_and_missing_init() {
        let mut sys = machine();
        assert_eq!(
            run(&mut sys, &cfg(), &Cmdline::parse("ro")),
            "no root= on the kernel command line"
        );
        let mut sys = machine();
        sys.paths.remove("/newroot/sbin/init");
        sys.paths.insert("/dev/vda".into());
        let why = run(&mut sys, &cfg(), &Cmdline::parse("root=/dev/vda"));
        assert_eq!(why, "the root filesystem on /dev/vda has no /sbin/init");
        assert!(sys.calls_starting("clear_rootfs").is_empty());
    }

    #[test]
    fn loads_missing_filesystem_through_modules_dep() {
        let mut sys = machine();
        sys.paths.insert("/dev/vda".into());
        sys.add_file("/proc/filesystems", b"nodev\tsysfs\nnodev\tproc\n");
        sys.add_file(
            &format!("/lib/modules/{K}/modules.dep"),
            b"kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\n",
        );
        sys.paths
            .insert(format!("/lib/modules/{K}/kernel/fs/ext4/ext4.ko"));
        sys.paths
            .insert(format!("/lib/modules/{K}/kernel/fs/jbd2/jbd2.ko"));
        run(&mut sys, &cfg(), &Cmdline::parse("root=/dev/vda"));
        let jbd2 = sys
            .position(&format!(
                "load_module /lib/modules/{K}/kernel/fs/jbd2/jbd2.ko"
            ))
            .unwrap();
        let ext4 = sys
            .position(&format!(
                "load_module /lib/modules/{K}/kernel/fs/ext4/ext4.ko"
            ))
            .unwrap();
        let mount = sys.position("mount /dev/vda /newroot ext4 ro").unwrap();
        assert!(jbd2 < ext4 && ext4 < mount);
        // crc32c_generic is not in this modules.dep: logged and skipped
        assert!(sys.logs.iter().any(|l| l.contains("crc32c_generic")));

        let mut sys = machine();
        sys.paths.insert("/dev/vda".into());
        sys.add_file("/proc/filesystems", b"nodev\tproc\n\text4\n");
        run(&mut sys, &cfg(), &Cmdline::parse("root=/dev/vda"));
        assert_eq!(sys.calls_starting("load_module").len(), 1);
    }

    #[test]
    fn failed_module_does_not_stop_boot() {
        let mut sys = machine();
        sys.paths.insert("/dev/vda".into());
        sys.fail.insert("load_module".into());
        let why = run(&mut sys, &cfg(), &Cmdline::parse("root=/dev/vda"));
        assert!(why.starts_with("exec"));
    }
}

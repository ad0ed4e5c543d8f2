//! The guest still reaches its console shell when things are missing
//! (issue 4): a module the recipe names is absent from the root image at run
//! time, or the machine has no NIC at all.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imgbuild_e2e::env;
use imgbuild_e2e::guest::{self, ADDRESS, PREFIX};
use imgbuild_e2e::kmsg::{in_order, init_messages};
use imgbuild_e2e::vm::{Options, TestVm};

const BOOT: Duration = Duration::from_secs(180);
const CMD: Duration = Duration::from_secs(30);

fn debugfs(image: &Path, write: bool, request: &str) -> String {
    let mut cmd = Command::new("debugfs");
    if write {
        cmd.arg("-w");
    }
    let out = cmd
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .expect("running debugfs (install e2fsprogs)");
    assert!(
        out.status.success(),
        "debugfs -R {request:?} failed: {out:?}"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The recipe loads `xen-netfront` and `virtio_net`. The builder refuses a
/// module the kernel does not have, so the faithful way to make one missing
/// is at run time: a copy of `rootfs.img` without `xen-netfront.ko`. The
/// init logs it as missing, skips it, still loads virtio_net, configures
/// eth0 and starts the shell.
#[test]
fn missing_module_is_skipped_and_the_guest_comes_up() {
    if !env::can_run("missing_module_is_skipped_and_the_guest_comes_up") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let kver = g.manifest().kernel_version.clone();
    let work = env::TempDir::new("missing-module").unwrap();
    let root = work.path().join("rootfs.img");
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(g.file(guest_contract::outputs::Output::RootImage))
        .arg(&root)
        .status()
        .unwrap();
    assert!(cp.success());
    let ko = format!("/lib/modules/{kver}/kernel/drivers/net/xen-netfront.ko");
    let dep = debugfs(
        &root,
        false,
        &format!("cat /lib/modules/{kver}/modules.dep"),
    );
    assert!(
        dep.contains("kernel/drivers/net/xen-netfront.ko"),
        "the image's modules.dep does not list xen-netfront:\n{dep}"
    );
    debugfs(&root, true, &format!("rm {ko}"));
    let gone = debugfs(&root, false, &format!("stat {ko}"));
    assert!(gone.contains("File not found"), "{ko} still there:\n{gone}");

    let vm = TestVm::boot(
        g,
        "missing-module",
        &Options {
            rootfs: Some(root.clone()),
            ..Options::default()
        },
    );
    vm.wait_for("boot complete", BOOT);
    vm.wait_for_shell(BOOT);
    in_order(
        &init_messages(&vm.log()),
        &[
            "stage 2 (root)",
            "xen-netfront.ko is missing; skipped",
            "loaded module virtio_net",
            &format!("eth0 configured: {ADDRESS}/{PREFIX}"),
            "boot complete",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.diagnostics()));
    vm.ping(ADDRESS, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("ping {ADDRESS}: {e}\n{}", vm.diagnostics()));
    assert_eq!(vm.run("echo $((6*7))", CMD), "42");
}

/// QEMU without any NIC: the init waits for eth0, says it never appeared,
/// and carries on to the shell. No namespace, so no root needed.
#[test]
fn no_nic_still_reaches_the_shell() {
    let _one = env::serial();
    let g = guest::shared();
    let vm = TestVm::boot(
        g,
        "no-nic",
        &Options {
            nic: false,
            ..Options::default()
        },
    );
    vm.wait_for("boot complete", BOOT);
    vm.wait_for_shell(BOOT);
    in_order(
        &init_messages(&vm.log()),
        &[
            "stage 2 (root)",
            "loaded module virtio_net",
            "eth0 did not appear",
            "boot complete",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.diagnostics()));
    assert!(!vm.log().contains("==> eth0 up <=="));
    assert_eq!(vm.run("ls /sys/class/net", CMD), "lo");
    assert_eq!(vm.run("echo $((6*7))", CMD), "42");
}

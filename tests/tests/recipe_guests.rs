//! Guests of recipes other than busybox.toml, booted under real QEMU: what a
//! recipe leaves out must still give a guest that boots, and what it asks
//! for (a writable root) must hold in the running guest.

use std::path::PathBuf;
use std::time::Duration;

use imgbuild_e2e::env;
use imgbuild_e2e::guest::{self, Guest};
use imgbuild_e2e::kmsg::{in_order, init_messages};
use imgbuild_e2e::vm::{Options, TestVm};

const BOOT: Duration = Duration::from_secs(180);
const CMD: Duration = Duration::from_secs(30);

fn out(tag: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("imgbuild-e2e-out")
        .join(tag)
}

fn build(tag: &str, name: &str, text: &str) -> Guest {
    guest::build_text(&out(tag), &format!("{name}.toml"), name, text)
        .unwrap_or_else(|e| panic!("building the {name} guest: {e}"))
}

/// Booted as imgrun boots it: the manifest's QEMU command line.
fn boot(g: &Guest, name: &str, nic: bool) -> TestVm {
    let o = Options {
        cmdline: g.manifest().cmdline.qemu.clone(),
        nic,
        ..Options::default()
    };
    TestVm::boot(g, name, &o)
}

/// A recipe with no `[modules]` at all gets the drivers its root disk and
/// NIC need under QEMU (and Xen): before, its initramfs had no block driver
/// and the guest could not find its root disk.
#[test]
fn a_recipe_without_modules_boots_and_comes_up_on_the_network() {
    if !env::can_run("a_recipe_without_modules_boots_and_comes_up_on_the_network") {
        return;
    }
    let _one = env::serial();
    let g = build(
        "defaults",
        "mini",
        "[guest]\nname = \"mini\"\n[network]\naddress = \"10.66.0.5/24\"\ngateway = \"10.66.0.1\"\n",
    );
    let vm = boot(&g, "mini", true);
    vm.wait_for("boot complete", BOOT);
    let msgs = init_messages(&vm.log());
    in_order(
        &msgs,
        &[
            "stage 1 (initramfs)",
            "loaded module virtio_blk",
            "switched root; exec /sbin/init",
            "loaded module virtio_net",
            "eth0 configured: 10.66.0.5/24 gateway 10.66.0.1",
            "boot complete",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.diagnostics()));
    let st = vm
        .udp_status("10.66.0.5".parse().unwrap(), 5115, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("status service: {e}\n{}", vm.diagnostics()));
    assert_eq!(st.hostname, "mini", "{st:?}");
}

const DATA: &str = "[[rootfs.files]]\ndest = \"/data\"\ndirectory = true\nmode = \"1777\"\n";

/// `writable = true` mounts the root read-write: the guest can write to
/// `/data`; without it, the same write fails with a read-only filesystem.
#[test]
fn a_writable_root_takes_writes_and_the_default_does_not() {
    if !env::can_run("a_writable_root_takes_writes_and_the_default_does_not") {
        return;
    }
    let _one = env::serial();
    for (writable, expect) in [(true, "wrote it"), (false, "Read-only file system")] {
        let name = if writable { "rw" } else { "ro" };
        let g = build(
            "writable",
            name,
            &format!("[guest]\nname = \"{name}\"\n[rootfs]\nwritable = {writable}\n{DATA}"),
        );
        assert_eq!(
            g.manifest().cmdline.qemu.contains(" rw "),
            writable,
            "{}",
            g.manifest().cmdline.qemu
        );
        let vm = boot(&g, name, false);
        vm.wait_for_shell(BOOT);
        let said = vm.run("echo x > /data/f && echo wrote it", CMD);
        assert!(said.contains(expect), "writable = {writable}: {said}");
        let mounted = vm.run("grep ' / ' /proc/mounts", CMD);
        let mode = if writable { " rw," } else { " ro," };
        assert!(mounted.contains(mode), "writable = {writable}: {mounted}");
    }
}

//! Boot tests under real QEMU (TCG) with the real Debian kernel and the image
//! `imgbuild recipe` builds (issue 4, "Proof"). Every boot goes through the
//! initramfs (stage 1, virtio-blk root on `rootfs.img`) and switches to the
//! root image (stage 2).
//!
//! The guest is built from a variant of `recipes/busybox.toml` with its own
//! address, gateway, hostname and MAC (see `imgbuild_e2e::guest`).

use std::time::Duration;

use imgbuild_e2e::env;
use imgbuild_e2e::guest::{self, ADDRESS, GATEWAY, HOSTNAME, MAC, PREFIX};
use imgbuild_e2e::kmsg::{in_order, init_messages};
use imgbuild_e2e::vm::{BASE_CMDLINE, Options, TestVm};

/// Generous: TCG on a loaded 2-core machine. Speed is measured by
/// `bench/init-boot.sh`, never asserted here.
const BOOT: Duration = Duration::from_secs(180);
const CMD: Duration = Duration::from_secs(30);

/// Console shows the initramfs → root switch and eth0 configured with the
/// recipe's address (taken from init.conf: no `ip=` on the command line);
/// the guest answers ping from the namespace and the status service answers
/// over UDP with the recipe's MAC, address and hostname.
#[test]
fn boots_to_network_ping_and_status() {
    if !env::can_run("boots_to_network_ping_and_status") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let vm = TestVm::boot(g, "boot", &Options::default());
    vm.wait_for("==> eth0 up <==", BOOT);
    vm.wait_for("boot complete", BOOT);

    let msgs = init_messages(&vm.log());
    in_order(
        &msgs,
        &[
            "stage 1 (initramfs)",
            "loaded module virtio_blk",
            "root device",
            "switched root; exec /sbin/init",
            "stage 2 (root)",
            &format!("hostname {HOSTNAME}"),
            "loaded module virtio_net",
            "lo up",
            &format!("eth0 configured: {ADDRESS}/{PREFIX} gateway {GATEWAY}"),
            "==> eth0 up <==",
            "status service on port 5115",
            "console /dev/ttyS0",
            "boot complete",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.diagnostics()));

    let rtt = vm
        .ping(ADDRESS, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("ping {ADDRESS}: {e}\n{}", vm.diagnostics()));
    eprintln!("ping {ADDRESS}: answered in {rtt:?}");

    let st = vm
        .udp_status(ADDRESS, 5115, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("status service: {e}\n{}", vm.diagnostics()));
    assert_eq!(st.mac.to_ascii_lowercase(), MAC, "{st:?}");
    assert_eq!(st.hostname, HOSTNAME, "{st:?}");
    assert_eq!(st.addresses, vec![format!("{ADDRESS}/{PREFIX}")], "{st:?}");
    assert_eq!(st.boot_id.len(), 36, "boot_id is a UUID: {st:?}");
    let st2 = vm
        .udp_status(ADDRESS, 5115, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("status service: {e}"));
    assert!(
        st2.seq > st.seq,
        "seq must increase: {} then {}",
        st.seq,
        st2.seq
    );
    assert_eq!(st2.boot_id, st.boot_id);

    // The shell sees the same thing the init configured.
    vm.wait_for_shell(BOOT);
    let addr = vm.run("ip -4 addr show dev eth0", CMD);
    assert!(addr.contains(&format!("inet {ADDRESS}/{PREFIX}")), "{addr}");
    let route = vm.run("ip route", CMD);
    assert!(
        route.contains(&format!("default via {GATEWAY} dev eth0")),
        "{route}"
    );
    assert_eq!(vm.run("hostname", CMD), HOSTNAME);
    assert_eq!(vm.run("cat /proc/1/comm", CMD), "init");
}

/// Job control on the console: `sleep 100 &` then `jobs` lists a running
/// job, and the shell never said "job control turned off" (it has the
/// console as its controlling terminal, in its own session).
#[test]
fn console_shell_has_job_control() {
    if !env::can_run("console_shell_has_job_control") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let vm = TestVm::boot(g, "jobs", &Options::default());
    vm.wait_for("boot complete", BOOT);
    vm.wait_for_shell(BOOT);
    vm.run("dmesg -n 1", CMD);

    vm.console.send_line("sleep 100 &").unwrap();
    let jobs = vm.run("jobs", CMD);
    let running = jobs.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() == Some(&"[1]+") && w.get(1) == Some(&"Running") && l.contains("sleep 100")
    });
    assert!(
        running,
        "`jobs` did not list `[1]+ Running sleep 100`:\n{jobs}"
    );

    // The shell is a session leader whose controlling terminal is the console.
    let tty = vm.run("tty", CMD);
    assert_eq!(tty, "/dev/ttyS0");
    let sid = vm.run("cut -d' ' -f6 /proc/$$/stat; echo $$", CMD);
    let ids: Vec<&str> = sid.lines().collect();
    assert_eq!(ids.len(), 2, "{sid}");
    assert_eq!(ids[0], ids[1], "the shell is not a session leader: {sid}");
    // Nothing blocked: a shell that inherited PID 1's blocked signals could
    // not stop its jobs (`kill %1` would do nothing, Ctrl-C neither).
    let blocked = vm.run("grep SigBlk /proc/$$/status /proc/$!/status", CMD);
    assert!(
        blocked.lines().count() == 2 && blocked.lines().all(|l| l.ends_with("0000000000000000")),
        "the console shell or its job starts with blocked signals (inherited from PID 1?):\n{blocked}"
    );
    // Job specs (`%1`) work, and the job's state changes are tracked.
    assert_eq!(vm.run("kill %1 && echo killed", CMD), "killed");
    let after = vm.run("sleep 1; jobs", CMD);
    assert!(
        !after.contains("Running"),
        "still running after kill %1:\n{after}"
    );

    let log = vm.log();
    for bad in ["job control turned off", "can't access tty"] {
        assert!(
            !log.contains(bad),
            "console says {bad:?}:\n{}",
            vm.diagnostics()
        );
    }
}

/// `poweroff` typed on the console makes QEMU (run with `-no-reboot`) exit by
/// itself, successfully, after the init's orderly shutdown.
#[test]
fn poweroff_on_the_console_ends_qemu() {
    if !env::can_run("poweroff_on_the_console_ends_qemu") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let mut vm = TestVm::boot(g, "poweroff", &Options::default());
    vm.wait_for("boot complete", BOOT);
    vm.wait_for_shell(BOOT);
    vm.console.send_line("poweroff").unwrap();
    let status = vm.wait_exit(Duration::from_secs(120));
    let Some(status) = status else {
        panic!(
            "QEMU (pid {}) still runs 120 s after `poweroff`\n{}",
            vm.pid(),
            vm.diagnostics()
        );
    };
    assert!(
        status.success(),
        "QEMU exited with {status}\n{}",
        vm.diagnostics()
    );
    let log = vm.log();
    assert!(
        log.contains("reboot: Power down"),
        "the kernel did not power down:\n{}",
        vm.diagnostics()
    );
    assert!(
        !log.contains("Kernel panic"),
        "the kernel panicked:\n{}",
        vm.diagnostics()
    );
}

/// `ip=` on the kernel command line overrides the recipe: the guest answers
/// on the new address, with the new hostname, and not on the recipe's address.
#[test]
fn ip_on_the_command_line_overrides_the_recipe() {
    if !env::can_run("ip_on_the_command_line_overrides_the_recipe") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let new = std::net::Ipv4Addr::new(10, 77, 0, 123);
    let o = Options {
        cmdline: format!("{BASE_CMDLINE} ip={new}::{GATEWAY}:255.255.255.0:e2e-override:eth0:off"),
        ..Options::default()
    };
    let vm = TestVm::boot(g, "ip-override", &o);
    vm.wait_for("==> eth0 up <==", BOOT);
    vm.wait_for("boot complete", BOOT);
    in_order(
        &init_messages(&vm.log()),
        &[
            "hostname e2e-override",
            &format!("eth0 configured: {new}/24"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", vm.diagnostics()));

    vm.ping(new, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("ping {new}: {e}\n{}", vm.diagnostics()));
    let st = vm
        .udp_status(new, 5115, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("status service: {e}\n{}", vm.diagnostics()));
    assert_eq!(st.addresses, vec![format!("{new}/24")], "{st:?}");
    assert_eq!(st.hostname, "e2e-override", "{st:?}");
    assert_eq!(st.mac.to_ascii_lowercase(), MAC, "{st:?}");
    assert!(
        vm.ping(ADDRESS, Duration::from_secs(3)).is_err(),
        "the recipe's address {ADDRESS} answers too"
    );
}

/// The guards work: a test that fails while its guest runs leaves neither the
/// QEMU process nor the network namespace behind.
#[test]
fn a_failing_test_leaves_no_qemu_and_no_namespace() {
    if !env::can_run("a_failing_test_leaves_no_qemu_and_no_namespace") {
        return;
    }
    let _one = env::serial();
    let g = guest::shared();
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let vm = TestVm::boot(g, "guard", &Options::default());
        tx.send((vm.pid(), vm.netns_name())).unwrap();
        vm.wait_for("Linux version", BOOT);
        panic!("a deliberate failure with the guest running");
    })
    .join();
    assert!(failed.is_err(), "the inner test should have failed");
    let (pid, ns) = rx.recv().unwrap();
    let ns = ns.expect("the guest had a NIC and a namespace");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU pid {pid} survived the failed test"
    );
    assert!(
        !std::path::Path::new("/run/netns").join(&ns).exists(),
        "namespace {ns} survived the failed test"
    );
}

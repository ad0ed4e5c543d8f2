//! Closing the loop with the ext4 writer (issue 5): the Linux kernel is the
//! final judge of our ext4. A seeded random tree is written twice — by the
//! `ext4fs-builder` library (4 KiB blocks, journal) and by `imgbuild mkfs`
//! (1 KiB blocks, no journal) — and both images are attached to the guest as
//! read-only virtio disks. The guest mounts them and prints, for every entry,
//! type and permission bits, size, link count, sha256 of the contents and
//! symlink targets; all must equal the host's view of the tree, holes must
//! stay holes, and the kernel must log no ext4 error or warning.
//!
//! `IMGBUILD_E2E_SEED=<n>` repeats a run's tree. This test needs no network,
//! hence no root.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imgbuild_e2e::env;
use imgbuild_e2e::guest;
use imgbuild_e2e::tree::{self, GUEST_LIST_COMMAND, HOLEY, HOLEY_LEN};
use imgbuild_e2e::vm::{Options, TestVm};

const BOOT: Duration = Duration::from_secs(180);
const LIST: Duration = Duration::from_secs(600);

fn e2fsck(image: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(image)
        .output()
        .expect("running e2fsck (install e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck -fn {} complains:\n{}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn guest_kernel_reads_what_our_writer_wrote() {
    let _one = env::serial();
    let seed: u64 = std::env::var("IMGBUILD_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    eprintln!("random tree seed {seed} (IMGBUILD_E2E_SEED={seed} repeats it)");
    let work = env::TempDir::new("ext4").unwrap();
    let src = work.path().join("tree");
    std::fs::create_dir(&src).unwrap();
    tree::generate(&src, seed).unwrap();
    let host = tree::host_listing(&src).unwrap();

    // Image 1: the library, default options (4 KiB blocks, journal).
    let lib_img = work.path().join("lib.img");
    let mut fs = ext4fs_builder::FsBuilder::new(ext4fs_builder::Options {
        seed: Some(seed),
        ..ext4fs_builder::Options::default()
    });
    fs.add_tree(&src, "/").unwrap();
    fs.write(&lib_img).unwrap();
    // Image 2: the command line, 1 KiB blocks, no journal.
    let cli_img = work.path().join("cli.img");
    let status = Command::new(guest::imgbuild_binary().unwrap())
        .args(["mkfs", "--block-size", "1024", "--no-journal", "--seed"])
        .arg(seed.to_string())
        .arg(&src)
        .arg(&cli_img)
        .status()
        .unwrap();
    assert!(status.success(), "imgbuild mkfs failed: {status}");
    // The host's oracle first: a complaint here is clearer than in the guest.
    e2fsck(&lib_img);
    e2fsck(&cli_img);

    let g = guest::shared();
    let vm = TestVm::boot(
        g,
        "ext4",
        &Options {
            nic: false,
            extra_disks: vec![lib_img, cli_img],
            ..Options::default()
        },
    );
    vm.wait_for_shell(BOOT);
    vm.run("dmesg -n 1", BOOT);
    for (dev, name) in [
        ("vdb", "ext4fs-builder, 4 KiB blocks"),
        ("vdc", "imgbuild mkfs -b 1024"),
    ] {
        let mnt = format!("/tmp/{dev}");
        let mounted = vm.run(
            &format!("mkdir -p {mnt} && mount -t ext4 -o ro /dev/{dev} {mnt} && echo mounted"),
            BOOT,
        );
        assert_eq!(mounted, "mounted", "{name}: mount /dev/{dev} failed");
        let text = vm.run(
            &format!("cd {mnt} && {{ {GUEST_LIST_COMMAND}; }}; cd /"),
            LIST,
        );
        let (guest_view, blocks) = tree::parse_guest_listing(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", vm.diagnostics()));
        let diffs = tree::compare(&host, &guest_view, 20);
        assert!(
            diffs.is_empty(),
            "seed {seed}, {name}: the guest kernel sees a different tree than the host:\n{}",
            diffs.join("\n")
        );
        let sparse = blocks[HOLEY] * 512;
        assert!(
            sparse < HOLEY_LEN / 4,
            "seed {seed}, {name}: {HOLEY} takes {sparse} bytes on disk for {HOLEY_LEN} bytes: holes were filled"
        );
        eprintln!("{name}: {} entries agree with the host", host.len());
    }
    let klog = vm.run("dmesg | grep -i ext4", BOOT);
    let bad: Vec<&str> = klog
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ["error", "warning", "corrupt", "bad ", "invalid"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "seed {seed}: the kernel complains:\n{}",
        bad.join("\n")
    );
    assert!(
        klog.contains("EXT4-fs (vdb)") && klog.contains("EXT4-fs (vdc)"),
        "both disks mounted as ext4:\n{klog}"
    );
}

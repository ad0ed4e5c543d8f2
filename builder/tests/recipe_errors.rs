//! Table-driven tests of recipe errors found while validating (`--check`):
//! each names the recipe file, line:column and key, and nothing is written.

mod common;

use std::path::{Path, PathBuf};

use common::{imgbuild_cmd, recipe_path};

const BASE: &str = r#"[guest]
name = "t"
memory = "512M"
"#;

struct Case {
    name: &'static str,
    /// Appended to BASE (or replacing it when `full`).
    text: &'static str,
    full: bool,
    /// Expected `file:line:col: key `k`:` prefix pieces and message fragment.
    line_col: &'static str,
    key: &'static str,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "bad cidr prefix",
        text: "[network]\naddress = \"10.99.0.2/33\"\n",
        full: false,
        line_col: "5:11",
        key: "network.address",
        message: "prefix `33`",
    },
    Case {
        name: "cidr without prefix",
        text: "[network]\naddress = \"10.99.0.2\"\n",
        full: false,
        line_col: "5:11",
        key: "network.address",
        message: "not in CIDR form",
    },
    Case {
        name: "cidr network address",
        text: "[network]\naddress = \"10.99.0.0/24\"\n",
        full: false,
        line_col: "5:11",
        key: "network.address",
        message: "network address",
    },
    Case {
        name: "bad ip",
        text: "[network]\naddress = \"10.99.0.256/24\"\n",
        full: false,
        line_col: "5:11",
        key: "network.address",
        message: "not an IPv4 address",
    },
    Case {
        name: "gateway outside",
        text: "[network]\naddress = \"10.99.0.2/24\"\ngateway = \"10.98.0.1\"\n",
        full: false,
        line_col: "6:11",
        key: "network.gateway",
        message: "outside 10.99.0.2/24",
    },
    Case {
        name: "multicast mac",
        text: "[network]\naddress = \"10.99.0.2/24\"\nmac = \"01:16:3e:00:00:01\"\n",
        full: false,
        line_col: "6:7",
        key: "network.mac",
        message: "multicast",
    },
    Case {
        name: "broadcast mac",
        text: "[network]\naddress = \"10.99.0.2/24\"\nmac = \"ff:ff:ff:ff:ff:ff\"\n",
        full: false,
        line_col: "6:7",
        key: "network.mac",
        message: "unicast",
    },
    Case {
        name: "memory without unit (integer)",
        text: "[guest]\nname = \"t\"\nmemory = 512\n",
        full: true,
        line_col: "3:10",
        key: "guest.memory",
        message: "no unit",
    },
    Case {
        name: "memory without unit (string)",
        text: "[guest]\nname = \"t\"\nmemory = \"512\"\n",
        full: true,
        line_col: "3:10",
        key: "guest.memory",
        message: "no unit",
    },
    Case {
        name: "unknown key",
        text: "[guest]\nname = \"t\"\nmemroy = \"512M\"\n",
        full: true,
        line_col: "3:1",
        key: "guest.memroy",
        message: "unknown key `memroy` in guest; expected one of name, memory, vcpus, hostname (did you mean `memory`?)",
    },
    Case {
        name: "unknown section",
        text: "[gust]\nname = \"t\"\n",
        full: true,
        line_col: "1:",
        key: "gust",
        message: "unknown key `gust` at the top level; expected one of guest, inputs, rootfs, modules, network, xen, init (did you mean `guest`?)",
    },
    Case {
        name: "dest escapes root",
        text: "[[rootfs.files]]\ndest = \"/../etc/passwd\"\ntext = \"x\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.files[0].dest",
        message: "escapes the image root",
    },
    Case {
        name: "relative dest",
        text: "[[rootfs.files]]\ndest = \"etc/motd\"\ntext = \"x\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.files[0].dest",
        message: "absolute",
    },
    Case {
        name: "two kinds",
        text: "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nsymlink = \"b\"\n",
        full: false,
        line_col: "7:11",
        key: "rootfs.files[0].symlink",
        message: "several kinds",
    },
    Case {
        name: "missing base tarball",
        text: "[rootfs]\nbase = \"nope/rootfs.tar.zst\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.base",
        message: "nope/rootfs.tar.zst` does not exist (paths are relative to the recipe file)",
    },
    Case {
        name: "base that is not a tar archive",
        text: "[rootfs]\nbase = \"case.toml\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.base",
        message: "case.toml is not a tar archive (nor gzip, xz or zstd data)",
    },
    Case {
        name: "base that is a directory",
        text: "[rootfs]\nbase = \".\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.base",
        message: "is a directory; the base is a tar archive",
    },
    Case {
        name: "missing source",
        text: "[[rootfs.files]]\ndest = \"/a\"\nsource = \"nope/missing.txt\"\n",
        full: false,
        line_col: "6:10",
        key: "rootfs.files[0].source",
        message: "does not exist",
    },
    Case {
        name: "bad mode",
        text: "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nmode = \"0999\"\n",
        full: false,
        line_col: "7:8",
        key: "rootfs.files[0].mode",
        message: "octal",
    },
    Case {
        name: "bad size",
        text: "[rootfs]\nsize = \"lots\"\n",
        full: false,
        line_col: "5:8",
        key: "rootfs.size",
        message: "not a size",
    },
    Case {
        name: "long label",
        text: "[rootfs]\nlabel = \"a-label-that-is-too-long\"\n",
        full: false,
        line_col: "5:9",
        key: "rootfs.label",
        message: "at most 16",
    },
    Case {
        name: "bad xl action",
        text: "[xen]\non_crash = \"explode\"\n",
        full: false,
        line_col: "5:12",
        key: "xen.on_crash",
        message: "not an xl action",
    },
    Case {
        name: "bad vcpus",
        text: "[guest]\nname = \"t\"\nmemory = \"1G\"\nvcpus = 0\n",
        full: true,
        line_col: "4:9",
        key: "guest.vcpus",
        message: "0 vCPUs: imgbuild allows 1 to 512 (512 is the most vCPUs Xen supports in a PV guest)",
    },
    Case {
        name: "bad guest name",
        text: "[guest]\nname = \"a b\"\n",
        full: true,
        line_col: "2:8",
        key: "guest.name",
        message: "not a guest name",
    },
    Case {
        name: "bad module name",
        text: "[modules]\nload = [\"xen/netfront\"]\n",
        full: false,
        line_col: "5:9",
        key: "modules.load",
        message: "not a module name",
    },
    Case {
        name: "bad status port",
        text: "[init.status]\nport = 70000\n",
        full: false,
        line_col: "5:8",
        key: "init.status.port",
        message: "not a TCP/UDP port",
    },
    Case {
        name: "wrong type",
        text: "[guest]\nname = \"t\"\nvcpus = \"two\"\n",
        full: true,
        line_col: "3:9",
        key: "guest.vcpus",
        message: "guest.vcpus is a whole number, not a string",
    },
    Case {
        name: "package and path",
        text: "[inputs]\nkernel = { package = \"linux-image-amd64\", path = \"k\" }\n",
        full: false,
        line_col: "5:10",
        key: "inputs.kernel",
        message: "exactly one of `package` or `path`",
    },
    // A mode is an octal string; TOML integers are refused with the
    // string to write instead (644 is decimal 644, 0o644 is 420).
    Case {
        name: "integer mode 644",
        text: "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nmode = 644\n",
        full: false,
        line_col: "7:8",
        key: "rootfs.files[0].mode",
        message: "mode 644 is a number; write the mode as an octal string: mode = \"0644\"",
    },
    Case {
        name: "integer mode 0o644",
        text: "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nmode = 0o644\n",
        full: false,
        line_col: "7:8",
        key: "rootfs.files[0].mode",
        message: "write the mode as an octal string: mode = \"0644\"",
    },
    Case {
        name: "integer mode 999 (not octal digits)",
        text: "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nmode = 999\n",
        full: false,
        line_col: "7:8",
        key: "rootfs.files[0].mode",
        message: "mode = \"01747\"",
    },
    // Inputs: an unknown key inside the table, and a value of neither form.
    Case {
        name: "misspelt input key",
        text: "[inputs]\nkernel = { pakage = \"x\" }\n",
        full: false,
        line_col: "5:12",
        key: "inputs.kernel.pakage",
        message: "unknown key `pakage` in inputs.kernel; expected one of package, version, path, modules (did you mean `package`?)",
    },
    Case {
        name: "misspelt input key ([inputs.kernel] table)",
        text: "[inputs.kernel]\npakage = \"x\"\n",
        full: false,
        line_col: "5:1",
        key: "inputs.kernel.pakage",
        message: "unknown key `pakage` in inputs.kernel",
    },
    Case {
        name: "input of the wrong kind",
        text: "[inputs]\nkernel = 5\n",
        full: false,
        line_col: "5:10",
        key: "inputs.kernel",
        message: "inputs.kernel is a package or a path, not a number: write kernel = \"pkg\", \"pkg=version\", { package = \"pkg\", version = \"v\" } or { path = \"…\" }",
    },
    Case {
        name: "input key of the wrong type",
        text: "[inputs]\nbusybox = { package = 5 }\n",
        full: false,
        line_col: "5:23",
        key: "inputs.busybox.package",
        message: "inputs.busybox.package is a string, not a number: write package = \"5\"",
    },
    // Lists written as tables or scalars.
    Case {
        name: "[rootfs.files] with single brackets",
        text: "[rootfs.files]\ndest = \"/a\"\ntext = \"x\"\n",
        full: false,
        line_col: "4:1",
        key: "rootfs.files",
        message: "rootfs.files is a list of tables: write [[rootfs.files]] (double brackets) for each file",
    },
    Case {
        name: "[init.services] with single brackets",
        text: "[init.services]\ncommand = [\"/sbin/syslogd\", \"-n\"]\n",
        full: false,
        line_col: "4:1",
        key: "init.services",
        message: "init.services is a list of tables: write [[init.services]] (double brackets) for each service",
    },
    Case {
        name: "modules.load as a string",
        text: "[modules]\nload = \"virtio_net\"\n",
        full: false,
        line_col: "5:8",
        key: "modules.load",
        message: "modules.load is a list: write load = [\"virtio_net\"]",
    },
    Case {
        name: "service command as a string",
        text: "[[init.services]]\ncommand = \"/sbin/syslogd -n\"\n",
        full: false,
        line_col: "5:11",
        key: "init.services[0].command",
        message: "write command = [\"/sbin/syslogd\", \"-n\"]",
    },
    Case {
        name: "list item of the wrong type",
        text: "[modules]\ninitramfs = [\"xen-blkfront\", 5]\n",
        full: false,
        line_col: "5:30",
        key: "modules.initramfs",
        message: "modules.initramfs is a list of strings: write 5 as \"5\"",
    },
    // Wrong types in recipe words, with the form to write.
    Case {
        name: "quoted vcpus",
        text: "[guest]\nname = \"t\"\nvcpus = \"2\"\n",
        full: true,
        line_col: "3:9",
        key: "guest.vcpus",
        message: "guest.vcpus is a whole number: write vcpus = 2 (without quotes)",
    },
    Case {
        name: "vcpus too large for any number",
        text: "[guest]\nname = \"t\"\nvcpus = 99999999999999999999\n",
        full: true,
        line_col: "3:9",
        key: "guest.vcpus",
        message: "`99999999999999999999` is too large for guest.vcpus",
    },
    Case {
        name: "unquoted name",
        text: "[guest]\nname = 5\n",
        full: true,
        line_col: "2:8",
        key: "guest.name",
        message: "guest.name is a string, not a number: write name = \"5\"",
    },
    Case {
        name: "quoted boolean",
        text: "[[rootfs.files]]\ndest = \"/a\"\ndirectory = \"yes\"\n",
        full: false,
        line_col: "6:13",
        key: "rootfs.files[0].directory",
        message: "rootfs.files[0].directory is true or false: write directory = true (without quotes)",
    },
    Case {
        name: "device as a string",
        text: "[[rootfs.files]]\ndest = \"/dev/x\"\nchar_device = \"5:1\"\n",
        full: false,
        line_col: "6:15",
        key: "rootfs.files[0].char_device",
        message: "rootfs.files[0].char_device is a table, not a string: write char_device = { major = 5, minor = 1 }",
    },
    Case {
        name: "quoted device number",
        text: "[[rootfs.files]]\ndest = \"/dev/x\"\nchar_device = { major = \"5\", minor = 1 }\n",
        full: false,
        line_col: "6:25",
        key: "rootfs.files[0].char_device.major",
        message: "write major = 5 (without quotes)",
    },
    Case {
        name: "negative device number",
        text: "[[rootfs.files]]\ndest = \"/dev/x\"\nblock_device = { major = -1, minor = 0 }\n",
        full: false,
        line_col: "6:26",
        key: "rootfs.files[0].block_device.major",
        message: "`-1` is out of range: rootfs.files[0].block_device.major is a whole number from 0 to 4294967295",
    },
    Case {
        name: "section as a string",
        text: "network = \"10.0.0.2/24\"\n[guest]\nname = \"t\"\n",
        full: true,
        line_col: "1:11",
        key: "network",
        message: "network is a table, not a string: write [network] and its keys on the lines below it",
    },
    Case {
        name: "section with double brackets",
        text: "[[guest]]\nname = \"t\"\n",
        full: true,
        line_col: "1:1",
        key: "guest",
        message: "guest is a table, not a list: write [guest] (single brackets)",
    },
    Case {
        name: "root_wait with a unit",
        text: "[init]\nroot_wait = \"30s\"\n",
        full: false,
        line_col: "5:13",
        key: "init.root_wait",
        message: "init.root_wait is a whole number, not a string: write root_wait = 30",
    },
    Case {
        name: "missing required key",
        text: "[[rootfs.files]]\ntext = \"x\"\n",
        full: false,
        line_col: "4:1",
        key: "rootfs.files[0].dest",
        message: "this [[rootfs.files]] entry has no `dest`",
    },
    Case {
        name: "missing [guest]",
        text: "[xen]\nbridge = \"xenbr0\"\n",
        full: true,
        line_col: "1:1",
        key: "guest",
        message: "the recipe has no [guest] table",
    },
    // Memory is bounded by what a Linux PV guest can use.
    Case {
        name: "memory too large",
        text: "[guest]\nname = \"t\"\nmemory = \"100T\"\n",
        full: true,
        line_col: "3:10",
        key: "guest.memory",
        message: "at most 512 GiB (Linux PV guests are limited to 512 GiB by default, CONFIG_XEN_512GB)",
    },
    Case {
        name: "memory just over the bound",
        text: "[guest]\nname = \"t\"\nmemory = \"524289M\"\n",
        full: true,
        line_col: "3:10",
        key: "guest.memory",
        message: "at most 512 GiB",
    },
    // [xen] type: what imgbuild writes, PV or PVH.
    Case {
        name: "HVM guest type",
        text: "[xen]\ntype = \"hvm\"\n",
        full: false,
        line_col: "5:8",
        key: "xen.type",
        message: "`hvm` is not a guest type imgbuild writes; one of: pv, pvh",
    },
    Case {
        name: "guest type in capitals",
        text: "[xen]\nbridge = \"xenbr0\"\ntype = \"PVH\"\n",
        full: false,
        line_col: "6:8",
        key: "xen.type",
        message: "`PVH` is not a guest type imgbuild writes; one of: pv, pvh",
    },
    Case {
        name: "guest type not a string",
        text: "[xen]\ntype = 1\n",
        full: false,
        line_col: "5:8",
        key: "xen.type",
        message: "xen.type is a string",
    },
    Case {
        name: "too many vCPUs for PVH",
        text: "[guest]\nname = \"t\"\nvcpus = 129\n[xen]\ntype = \"pvh\"\n",
        full: true,
        line_col: "3:9",
        key: "guest.vcpus",
        message: "129 vCPUs: a PVH guest has at most 128 (Xen's HVM_MAX_VCPUS); a PV guest up to 512",
    },
    // [xen.storage]: each key of the kind it belongs to, said where it stands.
    Case {
        name: "unknown storage key",
        text: "[xen.storage]\nkind = \"nbd\"\nsize = 1\n",
        full: false,
        line_col: "6:1",
        key: "xen.storage.size",
        message: "unknown key `size` in xen.storage",
    },
    Case {
        name: "storage key of another kind",
        text: "[xen.storage]\nkind = \"nbd\"\nserver = \"10.99.0.1\"\nexport = \"t\"\nlun = 1\n",
        full: false,
        line_col: "8:7",
        key: "xen.storage.lun",
        message: "`lun` is an iscsi key; this storage is nbd",
    },
    Case {
        name: "storage key of another kind, inline",
        text: "[xen]\nstorage = { kind = \"phy\", device = \"/dev/sdb\", export = \"t\" }\n",
        full: false,
        line_col: "5:57",
        key: "xen.storage.export",
        message: "`export` is an nbd key; this storage is phy",
    },
    Case {
        name: "storage key missing",
        text: "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.imgbuild:t\"\n",
        full: false,
        line_col: "4:1",
        key: "xen.storage.portal",
        message: "a storage of kind iscsi needs `portal`",
    },
    Case {
        name: "unknown storage kind",
        text: "[xen.storage]\nkind = \"ceph\"\n",
        full: false,
        line_col: "5:8",
        key: "xen.storage.kind",
        message: "`ceph` is not a storage kind; one of: file, phy, iscsi, nbd",
    },
    Case {
        name: "bad IQN",
        text: "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-13.org.imgbuild:t\"\nportal = \"10.99.0.1\"\n",
        full: false,
        line_col: "6:10",
        key: "xen.storage.target",
        message: "`iqn.2026-13.org.imgbuild:t` is not an iSCSI name: `2026-13` is not a date",
    },
    Case {
        name: "iSCSI portal by DNS name",
        text: "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.imgbuild:t\"\nportal = \"nas.example.org:3260\"\n",
        full: false,
        line_col: "7:10",
        key: "xen.storage.portal",
        message: "an iSCSI portal must be an IP address, not a host name",
    },
    Case {
        name: "LUN out of range",
        text: "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.imgbuild:t\"\nportal = \"10.99.0.1\"\nlun = 256\n",
        full: false,
        line_col: "8:7",
        key: "xen.storage.lun",
        message: "LUN 256 is out of range: 0 to 255",
    },
    Case {
        name: "quoted LUN",
        text: "[xen.storage]\nkind = \"iscsi\"\nlun = \"1\"\n",
        full: false,
        line_col: "6:7",
        key: "xen.storage.lun",
        message: "xen.storage.lun is a whole number",
    },
    Case {
        name: "bad NBD export",
        text: "[xen.storage]\nkind = \"nbd\"\nserver = \"10.99.0.1:10809\"\nexport = \"a/b\"\n",
        full: false,
        line_col: "7:10",
        key: "xen.storage.export",
        message: "`a/b` is not an NBD export name",
    },
    Case {
        name: "relative phy device",
        text: "[xen.storage]\nkind = \"phy\"\ndevice = \"sdb\"\n",
        full: false,
        line_col: "6:10",
        key: "xen.storage.device",
        message: "`sdb` must be an absolute path",
    },
    Case {
        name: "disk_target and [xen.storage]",
        text: "[xen]\ndisk_target = \"/srv/t.img\"\n[xen.storage]\nkind = \"phy\"\ndevice = \"/dev/sdb\"\n",
        full: false,
        line_col: "6:1",
        key: "xen.storage",
        message: "give either xen.disk_target (the short form of a file storage) or [xen.storage], not both",
    },
    Case {
        name: "[xen.storage] and disk_target",
        text: "[xen]\nstorage = { path = \"/srv/t.img\" }\ndisk_target = \"/srv/t.img\"\n",
        full: false,
        line_col: "6:15",
        key: "xen.disk_target",
        message: "not both",
    },
];

fn tree_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            v.push(e.path());
            if e.path().is_dir() {
                v.extend(tree_files(&e.path()));
            }
        }
    }
    v.sort();
    v
}

/// Runs `imgbuild recipe` (with and without `--check`) on `text`; what is
/// wrong: success, an error without `file:line_col`, without `key `key``
/// (unless `key` is empty) or without `message`, or anything written or
/// fetched.
fn check_case(
    tmp: &Path,
    name: &str,
    text: &[u8],
    line_col: &str,
    key: &str,
    message: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let file = tmp.join("case.toml");
    std::fs::write(&file, text).unwrap();
    let out = tmp.join("out");
    for check in [true, false] {
        let mut cmd = imgbuild_cmd();
        cmd.arg("recipe")
            .arg("--out")
            .arg(&out)
            .arg("--cache")
            .arg(tmp.join("cache"));
        if check {
            cmd.arg("--check");
        }
        let o = cmd.arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let want_loc = format!("{}:{line_col}", file.display());
        let want_key = format!("key `{key}`");
        if o.status.success()
            || !stderr.contains(&want_loc)
            || (!key.is_empty() && !stderr.contains(&want_key))
            || !stderr.contains(message)
        {
            failures.push(format!(
                "{name} (check={check}): status {}, want {want_loc:?} {want_key:?} {message:?}, got: {stderr}",
                o.status
            ));
        }
        if stderr.matches("error:").count() != 1 {
            failures.push(format!("{name} (check={check}): not said once: {stderr}"));
        }
        let written = tree_files(&out);
        if !written.is_empty() {
            failures.push(format!("{name}: wrote {written:?}"));
        }
        if tmp.join("cache").exists() {
            failures.push(format!("{name}: fetched inputs before validating"));
        }
    }
    failures
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn recipe_errors_name_file_line_key_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let text = if case.full {
            case.text.to_owned()
        } else {
            format!("{BASE}{}", case.text)
        };
        failures.extend(check_case(
            tmp.path(),
            case.name,
            text.as_bytes(),
            case.line_col,
            case.key,
            case.message,
        ));
    }
    assert_no_failures(&failures);
}

/// A byte that is not UTF-8, even in a comment, is named with its place
/// (line and column counted in the valid text before it).
#[test]
fn non_utf8_recipe_names_line_column_and_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, text, line_col, message) in [
        (
            "latin-1 byte in a comment",
            &b"[guest]\nname = \"t\"\n# caf\xe9\n"[..],
            "3:6",
            "the recipe is not UTF-8 text: byte 0xE9",
        ),
        (
            "stray byte after multi-byte characters",
            &b"[guest]\nname = \"t\" # \xc3\xa9t\xc3\xa9 \xff\n"[..],
            "2:18",
            "the recipe is not UTF-8 text: byte 0xFF",
        ),
        (
            "truncated sequence on line 1",
            &b"\xe2\x82"[..],
            "1:1",
            "the recipe is not UTF-8 text: byte 0xE2",
        ),
    ] {
        failures.extend(check_case(tmp.path(), name, text, line_col, "", message));
    }
    assert_no_failures(&failures);
}

#[test]
fn shipped_recipe_checks_ok() {
    let recipe = recipe_path();
    let o = imgbuild_cmd()
        .args(["recipe", "--check"])
        .arg(&recipe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

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
        message: "unknown field `memroy`",
    },
    Case {
        name: "unknown section",
        text: "[gust]\nname = \"t\"\n",
        full: true,
        line_col: "1:",
        key: "gust",
        message: "unknown field `gust`",
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
        message: "1 to 512",
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
        message: "invalid type",
    },
    Case {
        name: "package and path",
        text: "[inputs]\nkernel = { package = \"linux-image-amd64\", path = \"k\" }\n",
        full: false,
        line_col: "5:10",
        key: "inputs.kernel",
        message: "exactly one of `package` or `path`",
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
        let file = tmp.path().join("case.toml");
        std::fs::write(&file, &text).unwrap();
        let out = tmp.path().join("out");
        for check in [true, false] {
            let mut cmd = imgbuild_cmd();
            cmd.arg("recipe")
                .arg("--out")
                .arg(&out)
                .arg("--cache")
                .arg(tmp.path().join("cache"));
            if check {
                cmd.arg("--check");
            }
            let o = cmd.arg(&file).output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let want_loc = format!("{}:{}", file.display(), case.line_col);
            let want_key = format!("key `{}`", case.key);
            if o.status.success()
                || !stderr.contains(&want_loc)
                || !stderr.contains(&want_key)
                || !stderr.contains(case.message)
            {
                failures.push(format!(
                    "{} (check={check}): status {}, want {want_loc:?} {want_key:?} {:?}, got: {stderr}",
                    case.name, o.status, case.message
                ));
            }
            let written = tree_files(&out);
            if !written.is_empty() {
                failures.push(format!("{}: wrote {written:?}", case.name));
            }
            if tmp.path().join("cache").exists() {
                failures.push(format!("{}: fetched inputs before validating", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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

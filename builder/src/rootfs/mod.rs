//! The root filesystem: what goes in it ([`plan`]) and writing it with
//! `ext4fs-builder` (`write`).

pub mod busybox;
mod plan;
pub mod programs;
pub mod resolve;
pub mod write;

use std::path::Path;

pub use plan::{Conflict, Node, Origin, Plan, PlanEntry};

use std::os::unix::fs::PermissionsExt;

use crate::recipe::{FileKind, Recipe, RecipeError};

/// Standard directories and their modes.
pub const STANDARD_DIRS: [(&str, u16); 17] = [
    ("/bin", 0o755),
    ("/dev", 0o755),
    ("/etc", 0o755),
    ("/etc/imgbuild", 0o755),
    ("/lib", 0o755),
    ("/lib/modules", 0o755),
    ("/media", 0o755),
    ("/mnt", 0o755),
    ("/opt", 0o755),
    ("/proc", 0o555),
    ("/root", 0o700),
    ("/run", 0o755),
    ("/sbin", 0o755),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/usr", 0o755),
    ("/var", 0o755),
];

/// A kernel module to install: path relative to `/lib/modules/<kver>`
/// (always a plain `.ko`) and its decompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// `kernel/drivers/net/xen-netfront.ko`
    pub rel: String,
    /// The module, decompressed.
    pub bytes: Vec<u8>,
}

/// Everything the root filesystem is made of.
#[derive(Debug)]
pub struct RootfsParts<'a> {
    /// The recipe (hostname, extra files).
    pub recipe: &'a Recipe,
    /// The busybox binary to install at /bin/busybox.
    pub busybox: &'a Path,
    /// Its applets (absolute paths).
    pub applets: &'a [String],
    /// The init binary for /sbin/init.
    pub init: &'a [u8],
    /// Stage-2 `init.conf` text.
    pub init_conf: &'a str,
    /// `uname -r` of the kernel.
    pub kernel_version: &'a str,
    /// Modules to install.
    pub modules: &'a [ModuleFile],
    /// `modules.dep` text for them.
    pub modules_dep: &'a str,
}

/// The root filesystem plan: standard dirs, busybox and its applet links,
/// device nodes, /etc files, the init, modules, then the recipe's extra
/// files (which may replace standard files, never silently lose anything:
/// see [`Plan::place`]).
pub fn plan(p: &RootfsParts<'_>) -> Result<Plan, RecipeError> {
    let mut plan = Plan::new();
    for (d, mode) in STANDARD_DIRS {
        plan.add(d, Node::Dir, mode);
    }
    plan.add(
        "/bin/busybox",
        Node::HostFile(p.busybox.to_path_buf()),
        0o755,
    );
    for a in p.applets {
        plan.add(a, Node::Symlink("/bin/busybox".to_owned()), 0o777);
    }
    plan.add("/dev/console", Node::CharDev(5, 1), 0o600);
    plan.add("/dev/null", Node::CharDev(1, 3), 0o666);
    let host = &p.recipe.guest.hostname;
    plan.add(
        "/etc/passwd",
        Node::Bytes(b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
        0o644,
    );
    plan.add("/etc/group", Node::Bytes(b"root:x:0:\n".to_vec()), 0o644);
    plan.add(
        "/etc/hostname",
        Node::Bytes(format!("{host}\n").into_bytes()),
        0o644,
    );
    plan.add(
        "/etc/hosts",
        Node::Bytes(format!("127.0.0.1\tlocalhost\n127.0.1.1\t{host}\n").into_bytes()),
        0o644,
    );
    plan.add("/sbin/init", Node::Bytes(p.init.to_vec()), 0o755);
    plan.add(
        "/etc/imgbuild/init.conf",
        Node::Bytes(p.init_conf.as_bytes().to_vec()),
        0o644,
    );
    let kdir = format!("/lib/modules/{}", p.kernel_version);
    plan.add(&kdir, Node::Dir, 0o755);
    for m in p.modules {
        plan.add(
            &format!("{kdir}/{}", m.rel),
            Node::Bytes(m.bytes.clone()),
            0o644,
        );
    }
    plan.add(
        &format!("{kdir}/modules.dep"),
        Node::Bytes(p.modules_dep.as_bytes().to_vec()),
        0o644,
    );
    let r = p.recipe;
    for (i, f) in r.rootfs.files.iter().enumerate() {
        let f = &f.value;
        let source_mode = |src: &Path| {
            std::fs::metadata(src)
                .map(|m| (m.permissions().mode() & 0o7777) as u16)
                .map_err(|e| {
                    r.error_at(
                        r.rootfs.files[i].loc,
                        &format!("rootfs.files[{i}].source"),
                        format!("cannot read `{}`: {e}", src.display()),
                    )
                })
        };
        let default = f.mode.unwrap_or_else(|| f.kind.default_mode());
        let (node, mode) = match &f.kind {
            FileKind::Copy(src) if src.is_dir() => (
                Node::HostTree {
                    src: src.clone(),
                    file_mode: f.mode,
                    dir_mode: f.dir_mode,
                },
                match f.dir_mode {
                    Some(m) => m,
                    None => source_mode(src)?,
                },
            ),
            FileKind::Copy(src) => (
                Node::HostFile(src.clone()),
                match f.mode {
                    Some(m) => m,
                    None => source_mode(src)?,
                },
            ),
            FileKind::Text(t) => (Node::Bytes(t.as_bytes().to_vec()), default),
            FileKind::Directory => (Node::Dir, default),
            FileKind::Symlink(t) => (Node::Symlink(t.clone()), default),
            FileKind::CharDevice { major, minor } => (Node::CharDev(*major, *minor), default),
            FileKind::BlockDevice { major, minor } => (Node::BlockDev(*major, *minor), default),
            FileKind::Fifo => (Node::Fifo, default),
        };
        plan.place(&f.dest, node, mode, (f.uid, f.gid), i)
            .map_err(|c| conflict_error(r, i, &c))?;
    }
    Ok(plan)
}

/// Where a recipe entry or the standard contents are, for messages.
fn origin_text(r: &Recipe, o: Origin) -> String {
    match o {
        Origin::Standard => "the builder's standard contents, which the guest needs".to_owned(),
        Origin::Recipe(j) => format!(
            "rootfs.files[{j}] at {}:{}",
            r.file.display(),
            r.rootfs.files.get(j).map_or(0, |f| f.loc.line)
        ),
    }
}

/// The recipe error for entry `i`'s conflict.
fn conflict_error(r: &Recipe, i: usize, c: &Conflict) -> RecipeError {
    let f = &r.rootfs.files[i];
    let dest = &f.value.dest;
    let msg = match c {
        Conflict::SameDest { earlier } => format!(
            "`{dest}` is also the destination of {}; one would silently replace the other: keep one",
            origin_text(r, Origin::Recipe(*earlier))
        ),
        Conflict::ReplacesDir { lost, origins } => {
            let who: Vec<String> = origins.iter().map(|o| origin_text(r, *o)).collect();
            let what = if lost.is_empty() {
                format!("`{dest}` is a directory of the image")
            } else {
                format!(
                    "`{dest}` is a directory of the image holding {}{}",
                    lost.join(", "),
                    if lost.len() >= 3 { ", …" } else { "" }
                )
            };
            format!(
                "{what} (from {}); a file, link or device there would replace all of it: put it inside (e.g. `{dest}/name`) or choose another path",
                who.join("; ")
            )
        }
        Conflict::UnderFile { parent, origin } => format!(
            "`{dest}` would be inside `{parent}`, which is a file, link or device (from {}), not a directory",
            origin_text(r, *origin)
        ),
    };
    r.error_at(f.loc, &format!("rootfs.files[{i}].dest"), msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    #[test]
    fn standard_layout() {
        let r = Recipe::parse(
            Path::new("/x/r.toml"),
            "[guest]\nname = \"g\"\n[[rootfs.files]]\ndest = \"/sbin/init\"\ntext = \"mine\"\nmode = \"0700\"\nowner = \"5:6\"\n",
        )
        .unwrap();
        let applets = vec![
            "/bin/sh".to_owned(),
            "/sbin/init".to_owned(),
            "/usr/bin/awk".to_owned(),
        ];
        let modules = vec![ModuleFile {
            rel: "kernel/drivers/net/x.ko".into(),
            bytes: b"ko".to_vec(),
        }];
        let parts = RootfsParts {
            recipe: &r,
            busybox: Path::new("/host/busybox"),
            applets: &applets,
            init: b"\x7fELF",
            init_conf: "stage = 2\n",
            kernel_version: "6.1.0-9-amd64",
            modules: &modules,
            modules_dep: "kernel/drivers/net/x.ko:\n",
        };
        let p = plan(&parts).unwrap();
        assert_eq!(p.get("/tmp").unwrap().mode, 0o1777);
        assert_eq!(p.get("/dev/console").unwrap().node, Node::CharDev(5, 1));
        assert_eq!(p.get("/dev/null").unwrap().node, Node::CharDev(1, 3));
        assert_eq!(
            p.get("/bin/sh").unwrap().node,
            Node::Symlink("/bin/busybox".into())
        );
        assert_eq!(
            p.get("/usr/bin/awk").unwrap().node,
            Node::Symlink("/bin/busybox".into())
        );
        assert_eq!(
            p.get("/etc/hostname").unwrap().node,
            Node::Bytes(b"g\n".to_vec())
        );
        assert!(
            p.get("/lib/modules/6.1.0-9-amd64/kernel/drivers/net/x.ko")
                .is_some()
        );
        assert!(p.get("/lib/modules/6.1.0-9-amd64/modules.dep").is_some());
        // The recipe's file wins over the init, with its mode and owner.
        let init = p.get("/sbin/init").unwrap();
        assert_eq!(init.node, Node::Bytes(b"mine".to_vec()));
        assert_eq!((init.mode, init.uid, init.gid), (0o700, 5, 6));
        for (d, _) in STANDARD_DIRS {
            assert_eq!(p.get(d).unwrap().node, Node::Dir, "{d}");
        }
    }
}

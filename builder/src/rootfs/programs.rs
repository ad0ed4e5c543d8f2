//! The programs the init starts — the console shell and every service —
//! must be in the image, as executable files, before the image is written:
//! a missing one builds fine and then loops on "starting … failed". The
//! programs are looked up in the filesystem as it will be written (base
//! tarball, host trees and planned entries together).

use ext4fs_builder::FsBuilder;
use guest_contract::words::split_words;

use super::resolve::{ResolveError, Target, resolve};
use super::{Node, Plan};
use crate::recipe::{Loc, Recipe, RecipeError};

/// Checks the console shell's and every service's program against `fs`, the
/// filesystem `plan` (whose names are searched for a suggestion) went into.
pub fn check(fs: &FsBuilder, plan: &Plan, r: &Recipe) -> Result<(), RecipeError> {
    let shell = split_words(&r.init.shell.value).unwrap_or_default();
    if let Some(p) = shell.first() {
        check_one(fs, plan, r, p, r.init.shell.loc, "init.shell")?;
    }
    for (n, s) in r.init.services.iter().enumerate() {
        if let Some(p) = s.value.argv.first() {
            check_one(
                fs,
                plan,
                r,
                p,
                s.loc,
                &format!("init.services[{n}].command"),
            )?;
        }
    }
    Ok(())
}

fn check_one(
    fs: &FsBuilder,
    plan: &Plan,
    r: &Recipe,
    program: &str,
    loc: Loc,
    key: &str,
) -> Result<(), RecipeError> {
    let problem = match resolve(fs, program) {
        Ok(Target::File {
            executable: true, ..
        }) => return Ok(()),
        Ok(Target::File { path, .. }) => format!(
            "`{program}` is not executable in the image{}; give it a mode with an x bit",
            if path == program {
                String::new()
            } else {
                format!(" (it is {path})")
            }
        ),
        Ok(Target::Dir(_)) => format!("`{program}` is a directory in the image, not a program"),
        Ok(Target::Other(_)) => {
            format!("`{program}` is a device or fifo in the image, not a program")
        }
        Err(ResolveError::Loop) => format!("`{program}`: too many symbolic links in the image"),
        Err(ResolveError::NotDir(p)) => {
            format!("`{program}` is not in the image: `{p}` is not a directory")
        }
        Err(ResolveError::Missing(p)) => {
            let mut m = if p == program {
                format!("`{program}` is not in the image")
            } else {
                format!("`{program}` is not in the image (`{p}` is missing)")
            };
            let elsewhere = same_name_programs(fs, plan, program);
            if !elsewhere.is_empty() {
                m.push_str(&format!(
                    "; `{}` is at {}",
                    base(program),
                    elsewhere.join(", ")
                ));
            }
            m
        }
    };
    Err(r.error_at(loc, key, problem))
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Other planned paths with the same file name that are programs.
fn same_name_programs(fs: &FsBuilder, plan: &Plan, program: &str) -> Vec<String> {
    let name = base(program);
    plan.iter()
        .filter(|(p, e)| {
            base(p) == name && *p != program && !matches!(e.node, Node::Dir | Node::HostTree { .. })
        })
        .filter(|(p, _)| {
            matches!(
                resolve(fs, p),
                Ok(Target::File {
                    executable: true,
                    ..
                })
            )
        })
        .map(|(p, _)| p.to_owned())
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn recipe(init: &str) -> Recipe {
        Recipe::parse(
            Path::new("/r/g.toml"),
            &format!("[guest]\nname = \"g\"\n{init}"),
        )
        .unwrap()
    }

    fn plan() -> Plan {
        let mut p = Plan::new();
        p.add("/bin/busybox", Node::Bytes(b"ELF".to_vec()), 0o755);
        p.add("/bin/sh", Node::Symlink("/bin/busybox".into()), 0o777);
        p.add(
            "/usr/sbin/httpd",
            Node::Symlink("/bin/busybox".into()),
            0o777,
        );
        p.add("/etc/motd", Node::Bytes(b"hi".to_vec()), 0o644);
        p
    }

    /// `check` against `plan()` as it is written.
    fn check_plan(r: &Recipe) -> Result<(), RecipeError> {
        let p = plan();
        let fs =
            super::super::write::builder(&p, None, ext4fs_builder::Options::default(), 0).unwrap();
        check(&fs, &p, r)
    }

    #[test]
    fn the_programs_must_be_in_the_image() {
        let ok = recipe("[[init.services]]\ncommand = [\"/usr/sbin/httpd\", \"-f\"]\n");
        check_plan(&ok).unwrap();
        let e = check_plan(&recipe(
            "[[init.services]]\ncommand = [\"/bin/httpd\", \"-f\"]\n",
        ))
        .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.loc.line),
            ("init.services[0].command", 4)
        );
        assert!(
            e.message
                .contains("`/bin/httpd` is not in the image; `httpd` is at /usr/sbin/httpd"),
            "{e}"
        );
        let e = check_plan(&recipe("[init]\nshell = \"/etc/motd -l\"\n")).unwrap_err();
        assert_eq!(e.key, "init.shell");
        assert!(e.message.contains("not executable"), "{e}");
        let e = check_plan(&recipe("[init]\nshell = \"/bin/bash\"\n")).unwrap_err();
        assert!(e.message.contains("`/bin/bash` is not in the image"), "{e}");
    }
}

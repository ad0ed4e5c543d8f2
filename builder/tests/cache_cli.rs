//! The package cache from the outside: where it is (never the current
//! directory), `imgbuild recipe --offline`, the manifest's `inputs`, and
//! `imgbuild cache list|clean`. apt's own tools (`apt-cache policy`,
//! `apt-cache show`) are the oracles for versions and hashes.
//!
//! The tests that need packages skip (with a message) when apt is not
//! installed. They share one warm cache under Cargo's target tmp directory,
//! seeded with hard links from the user's cache when it has the packages.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::{have, imgbuild_cmd, recipe_path, sha256, tool};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", o.status, stderr(&o));
    stdout(&o)
}

fn have_apt() -> bool {
    let found = have("apt-get") && have("apt-cache");
    if !found {
        eprintln!("SKIPPED: apt is not installed; this test needs its package lists");
    }
    found
}

/// `apt-cache policy PKG`'s `Candidate:`.
fn policy_candidate(pkg: &str) -> String {
    let out = tool("apt-cache", &["policy", pkg]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .unwrap_or_else(|| panic!("no candidate in {out}"))
        .to_owned()
}

/// The `SHA256:` of `apt-cache show PKG=VERSION`.
fn lists_sha256(pkg: &str, version: &str) -> String {
    let out = tool("apt-cache", &["show", &format!("{pkg}={version}")]);
    out.lines()
        .find_map(|l| l.strip_prefix("SHA256: "))
        .unwrap_or_else(|| panic!("no SHA256 in {out}"))
        .to_owned()
}

/// The 1-based line of `key = ` in `file`.
fn line_of(file: &Path, key: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .position(|l| l.starts_with(&format!("{key} = ")))
        .unwrap()
        + 1
}

/// Hard-links (else copies) every `.deb` of `from` into `to`.
fn seed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let Ok(rd) = std::fs::read_dir(from) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "deb") && p.is_file() {
            let dest = to.join(e.file_name());
            if !dest.exists() && std::fs::hard_link(&p, &dest).is_err() {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
}

/// A cache holding the shipped recipe's packages: seeded from the user's
/// cache, completed by an online `imgbuild recipe --check`. Shared by the
/// tests (which only read it).
fn warm_cache() -> &'static Path {
    static WARM: OnceLock<PathBuf> = OnceLock::new();
    WARM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("imgbuild-cache-cli");
        if let Ok(user) = imgbuild::sources::cache::locate(None) {
            seed(&user.path, &dir);
        }
        ok(imgbuild_cmd()
            .args(["recipe", "--check", "--cache"])
            .arg(&dir)
            .arg(recipe_path())
            .output()
            .unwrap());
        dir
    })
}

/// `PATH` with `apt-get` failing (a link to `false`, never a file written
/// here, so no ETXTBSY races): a build that runs it fails.
fn path_without_apt_get(tmp: &Path) -> std::ffi::OsString {
    path_with_failing(tmp, "apt-get")
}

/// `PATH` with `tool` failing.
fn path_with_failing(tmp: &Path, tool: &str) -> std::ffi::OsString {
    let bin = tmp.join(format!("no-{tool}"));
    std::fs::create_dir_all(&bin).unwrap();
    let f = ["/bin/false", "/usr/bin/false"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(f, bin.join(tool)).unwrap();
    let mut path = bin.into_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

/// With neither HOME nor XDG_CACHE_HOME (nor IMGBUILD_CACHE, nor --cache)
/// the cache went to ./.cache/imgbuild in the current directory; now that is
/// an error saying what to set.
#[test]
fn cache_location_is_said_and_never_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = || {
        let mut c = imgbuild_cmd();
        c.env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("IMGBUILD_CACHE")
            .current_dir(tmp.path());
        c
    };
    let o = bare()
        .args(["recipe", "--check"])
        .arg(recipe_path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    for want in ["HOME", "XDG_CACHE_HOME", "IMGBUILD_CACHE", "--cache"] {
        assert!(err.contains(want), "{err}");
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "wrote into the current directory"
    );
    let o = bare().args(["cache", "list"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("XDG_CACHE_HOME"));

    // Each setting in turn, and `cache list` says which one chose it.
    let xdg = tmp.path().join("xdg");
    let out = ok(bare()
        .env("XDG_CACHE_HOME", &xdg)
        .env("HOME", "/nonexistent-home")
        .args(["cache", "list"])
        .output()
        .unwrap());
    assert!(
        out.starts_with(&format!(
            "cache {} (from $XDG_CACHE_HOME/imgbuild, does not exist yet)\n",
            xdg.join("imgbuild").display()
        )),
        "{out}"
    );
    assert!(out.contains("total: 0 B (0 bytes)"), "{out}");
    let out = ok(bare()
        .env("HOME", tmp.path())
        .args(["cache", "list"])
        .output()
        .unwrap());
    let home_cache = tmp.path().join(".cache/imgbuild");
    assert!(
        out.starts_with(&format!(
            "cache {} (from $HOME/.cache/imgbuild",
            home_cache.display()
        )),
        "{out}"
    );
    let out = ok(bare()
        .env("HOME", tmp.path())
        .env("IMGBUILD_CACHE", "/elsewhere")
        .args(["cache", "list"])
        .output()
        .unwrap());
    assert!(
        out.starts_with("cache /elsewhere (from $IMGBUILD_CACHE"),
        "{out}"
    );
    let out = ok(bare()
        .env("IMGBUILD_CACHE", "/elsewhere")
        .args(["cache", "list", "--cache", "/c"])
        .output()
        .unwrap());
    assert!(out.starts_with("cache /c (from --cache"), "{out}");

    // The help of `--cache` names the default.
    let help = ok(imgbuild_cmd().args(["recipe", "--help"]).output().unwrap());
    for want in [
        "$IMGBUILD_CACHE",
        "$XDG_CACHE_HOME/imgbuild",
        "$HOME/.cache/imgbuild",
        "imgbuild cache list",
        "--offline",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
}

/// `--offline` builds only from the cache: with an empty cache it fails
/// naming the recipe line, the package, its candidate version and what to
/// run, and downloads nothing; with a warm cache it builds without running
/// apt-get, the same manifest as online.
#[test]
fn offline_builds_only_from_the_cache() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe_path();
    let empty = tmp.path().join("empty");
    let o = imgbuild_cmd()
        .args(["recipe", "--offline", "--cache"])
        .arg(&empty)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg(&recipe)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let at = format!("{}:{}:", recipe.display(), line_of(&recipe, "kernel"));
    let candidate = policy_candidate("linux-image-amd64");
    for want in [
        at.as_str(),
        "key `inputs.kernel`",
        "package linux-image-amd64",
        &format!("version {candidate}"),
        &format!("imgbuild recipe {}", recipe.display()),
        "without --offline",
    ] {
        assert!(err.contains(want), "want {want:?}: {err}");
    }
    assert!(!empty.exists(), "offline created the cache");
    assert!(!tmp.path().join("out").exists());

    // Not written in the recipe: the key is named.
    let bare = tmp.path().join("bare.toml");
    std::fs::write(&bare, "[guest]\nname = \"bare\"\n").unwrap();
    let o = imgbuild_cmd()
        .args(["recipe", "--offline", "--check", "--cache"])
        .arg(&empty)
        .arg(&bare)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}: key `inputs.kernel`: package linux-image-amd64",
            bare.display()
        )),
        "{err}"
    );
    // Not in the lists: apt-get update is what to run.
    let pinned = tmp.path().join("pinned.toml");
    std::fs::write(
        &pinned,
        "[guest]\nname = \"p\"\n[inputs]\nbusybox = \"busybox-static=0.0.1-imgbuild\"\n",
    )
    .unwrap();
    let o = imgbuild_cmd()
        .args(["recipe", "--offline", "--check", "--cache"])
        .arg(warm_cache())
        .arg(&pinned)
        .output()
        .unwrap();
    let err = stderr(&o);
    for want in [
        &format!("{}:4:", pinned.display()) as &str,
        "key `inputs.busybox`",
        "busybox-static",
        "0.0.1-imgbuild",
        "apt-get update",
    ] {
        assert!(err.contains(want), "want {want:?}: {err}");
    }

    // Warm: online and offline (apt-get unusable) give the same manifest.
    let cache = warm_cache();
    let build = |out: &Path, offline: bool| {
        let mut c = imgbuild_cmd();
        c.args(["recipe", "--json", "--cache"])
            .arg(cache)
            .arg("--out")
            .arg(out);
        if offline {
            c.arg("--offline")
                .env("PATH", path_without_apt_get(tmp.path()));
        }
        let m: serde_json::Value =
            serde_json::from_str(&ok(c.arg(&recipe).output().unwrap())).unwrap();
        m
    };
    // (Into one directory: the xl config names it.)
    let online = build(&tmp.path().join("built"), false);
    let offline = build(&tmp.path().join("built"), true);
    assert_eq!(online["inputs"], offline["inputs"]);
    assert_eq!(online["outputs"], offline["outputs"]);
    assert_eq!(online["inputs"].as_array().map(Vec::len), Some(2));
}

/// The manifest's `inputs` (once always empty): for a package what was
/// requested, the package used (a metapackage resolved), its version,
/// architecture and the .deb's SHA-256, checked against apt; for a local
/// input the path and SHA-256 of the file used; busybox's own version.
#[test]
fn manifest_inputs_say_what_was_used() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = warm_cache();
    let candidate = policy_candidate("linux-image-amd64");
    let manifest = |recipe: &Path, out: &str| -> serde_json::Value {
        let o = imgbuild_cmd()
            .args(["recipe", "--json", "--cache"])
            .arg(cache)
            .arg("--out")
            .arg(tmp.path().join(out))
            .arg(recipe)
            .output()
            .unwrap();
        serde_json::from_str(&ok(o)).unwrap()
    };
    let online = manifest(&recipe_path(), "out");
    let inputs = online["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    let (k, b) = (&inputs[0], &inputs[1]);
    assert_eq!(k["input"], "kernel");
    assert_eq!(k["requested"], "linux-image-amd64");
    let kpkg = k["package"].as_str().unwrap();
    let kver = k["version"].as_str().unwrap();
    assert!(
        kpkg.starts_with("linux-image-6.") && kpkg.ends_with("-amd64"),
        "{kpkg}"
    );
    let kdeb = cache.join(format!("{kpkg}_{}_amd64.deb", kver.replace(':', "%3a")));
    assert_eq!(k["sha256"], sha256(&kdeb));
    assert_eq!(k["sha256"], lists_sha256(kpkg, kver));
    assert_eq!(k["architecture"], "amd64");
    assert_eq!(
        format!("{kpkg} (= {kver})"),
        tool(
            "apt-cache",
            &["show", &format!("linux-image-amd64={candidate}")]
        )
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap()
    );
    assert!(k.get("busybox_version").is_none() && k.get("path").is_none());
    let bver = policy_candidate("busybox-static");
    assert_eq!(b["input"], "busybox");
    assert_eq!(b["requested"], "busybox-static");
    assert_eq!(b["package"], "busybox-static");
    assert_eq!(b["version"], bver.as_str());
    assert_eq!(b["architecture"], "amd64");
    assert_eq!(b["sha256"], lists_sha256("busybox-static", &bver));
    // busybox_version: what the binary itself says (the one unpacked in
    // the cache, under the name keyed by the .deb's SHA-256).
    let unpacked = |deb: &Path| {
        cache
            .join("unpacked")
            .join(imgbuild::sources::cache::tree_name(deb, &sha256(deb)))
    };
    let bdeb = cache.join(format!(
        "busybox-static_{}_amd64.deb",
        bver.replace(':', "%3a")
    ));
    let bin = unpacked(&bdeb).join("bin/busybox");
    let help = ok(std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .unwrap());
    let said = help
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("BusyBox v"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert_eq!(b["busybox_version"], said);
    assert!(bver.contains(said), "{bver} vs {said}");

    // Local inputs: the path and SHA-256 of the files used.
    let kdir = unpacked(&kdeb);
    let local = tmp.path().join("local.toml");
    std::fs::write(
        &local,
        format!(
            "[guest]\nname = \"local\"\n[inputs]\nkernel = {{ path = \"{}\" }}\nbusybox = {{ path = \"{}\" }}\n",
            kdir.display(),
            bin.display()
        ),
    )
    .unwrap();
    let m = manifest(&local, "local-out");
    let kver_dir = m["kernel_version"].as_str().unwrap();
    let vmlinuz = kdir.join(format!("boot/vmlinuz-{kver_dir}"));
    assert_eq!(
        m["inputs"],
        serde_json::json!([
            { "input": "kernel", "path": vmlinuz.display().to_string(), "sha256": sha256(&vmlinuz) },
            { "input": "busybox", "path": bin.display().to_string(), "sha256": sha256(&bin), "busybox_version": said },
        ])
    );
}

/// `cache list` shows every package with version, architecture, size and
/// sha256, the unpacked trees, leftovers and the total; `cache clean
/// --keep-current` keeps only what a build would use now, `cache clean`
/// everything imgbuild wrote; files that are not imgbuild's stay.
#[test]
fn cache_list_and_clean() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("cache");
    seed(warm_cache(), &c);
    let bver = policy_candidate("busybox-static");
    let bfile = format!("busybox-static_{}_amd64.deb", bver.replace(':', "%3a"));
    let bsha = sha256(&c.join(&bfile));
    // An old version, its tree, the current one's tree, leftovers, a stranger.
    let old = c.join("busybox-static_1%3a1.30.1-7_amd64.deb");
    std::fs::write(&old, b"an old busybox").unwrap();
    let old_tree = c.join("unpacked/busybox-static_1%3a1.30.1-7_amd64.0123456789abcdef");
    let cur_tree = c.join(format!(
        "unpacked/{}.{}",
        bfile.trim_end_matches(".deb"),
        &bsha[..16]
    ));
    for t in [&old_tree, &cur_tree] {
        std::fs::create_dir_all(t.join("bin")).unwrap();
        std::fs::write(t.join("bin/busybox"), b"1234567").unwrap();
    }
    std::fs::create_dir_all(c.join(".download-x1")).unwrap();
    std::fs::write(c.join(".download-x1/part.deb"), b"12").unwrap();
    std::fs::write(c.join("notes.txt"), b"mine").unwrap();

    let cache_arg = |args: &[&str]| {
        let mut cmd = imgbuild_cmd();
        cmd.args(args).arg("--cache").arg(&c);
        ok(cmd.output().unwrap())
    };
    let list = cache_arg(&["cache", "list"]);
    assert!(
        list.starts_with(&format!("cache {} (from --cache)\n", c.display())),
        "{list}"
    );
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&c)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    assert!(
        list.contains(&format!("packages: {}\n", debs.len())),
        "{list}"
    );
    let mut total = 0;
    for d in &debs {
        let (name, version, arch) =
            imgbuild::sources::spec::parse_deb_file_name(d.file_name().unwrap().to_str().unwrap())
                .unwrap();
        let size = std::fs::metadata(d).unwrap().len();
        total += size;
        let line = format!("  {name} {version} {arch} ");
        let found = list
            .lines()
            .find(|l| l.starts_with(&line))
            .unwrap_or_else(|| panic!("no {line:?} in {list}"));
        assert!(
            found.ends_with(&format!("({size} bytes) sha256 {}", sha256(d))),
            "{found}"
        );
    }
    assert!(
        list.contains(&format!("  {} 7 B (of {bfile})\n", cur_tree.display())),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "  {} 7 B (unused: no cached package has its name and SHA-256)\n",
            old_tree.display()
        )),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "left over from interrupted runs: {} 2 B\n",
            c.join(".download-x1").display()
        )),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "not imgbuild's (clean leaves it alone): {} 4 B\n",
            c.join("notes.txt").display()
        )),
        "{list}"
    );
    let apt_bytes: u64 = std::fs::metadata(c.join("apt/pkgcache.bin")).map_or(0, |m| m.len());
    let total = total + 7 + 7 + 2 + apt_bytes;
    assert!(list.contains(&format!(" ({total} bytes)\n")), "{list}");

    // What is current cannot be told without apt: nothing is removed.
    let o = imgbuild_cmd()
        .args(["cache", "clean", "--keep-current", "--cache"])
        .arg(&c)
        .env("PATH", path_with_failing(tmp.path(), "apt-cache"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("nothing was removed"), "{}", stderr(&o));
    assert!(old.exists() && old_tree.exists());

    // Keep what a build would use now: the old version and its tree go.
    let out = cache_arg(&["cache", "clean", "--keep-current"]);
    assert!(out.contains("left alone (not imgbuild's)"), "{out}");
    assert!(!old.exists() && !old_tree.exists() && !c.join(".download-x1").exists());
    assert!(c.join(&bfile).exists() && cur_tree.exists(), "{out}");
    let kver = policy_candidate("linux-image-amd64");
    assert!(
        c.join(format!("linux-image-amd64_{kver}_amd64.deb"))
            .exists()
    );
    let kept_kernels = std::fs::read_dir(&c)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with("linux-image-6") && n.ends_with(".deb")
        })
        .count();
    assert_eq!(kept_kernels, 1);

    // Everything imgbuild wrote.
    let out = cache_arg(&["cache", "clean"]);
    assert!(out.contains("removed "), "{out}");
    let names: Vec<_> = std::fs::read_dir(&c)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    let list = cache_arg(&["cache", "list"]);
    assert!(
        list.contains("packages: 0\n") && list.contains("total: 0 B (0 bytes)\n"),
        "{list}"
    );
}

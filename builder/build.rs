//! Builds the static PID 1 (`imgbuild-init`) with a nested cargo so that the
//! `imgbuild` binary can embed it: `cargo build --release` then
//! `imgbuild recipe recipes/busybox.toml` needs no path.
//!
//! The nested build uses its own target directory (no lock on the outer one),
//! the `init` profile, and `-C target-feature=+crt-static`. If it fails, a
//! warning is printed and an empty placeholder is embedded; `imgbuild` then
//! asks for `IMGBUILD_INIT=/path/to/init` at run time.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ws = manifest_dir
        .parent()
        .unwrap_or(Path::new(".."))
        .to_path_buf();
    for p in [
        "contract/src",
        "contract/Cargo.toml",
        "init/src",
        "init/Cargo.toml",
        "modules/src",
        "modules/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", ws.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=IMGBUILD_SKIP_INIT_BUILD");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let dest = out_dir.join("imgbuild-init");

    if env::var_os("IMGBUILD_SKIP_INIT_BUILD").is_some() {
        println!(
            "cargo:warning=IMGBUILD_SKIP_INIT_BUILD set: no init embedded; set IMGBUILD_INIT at run time"
        );
        write_placeholder(&dest);
        return;
    }

    // OUT_DIR = <target>[/<triple>]/<profile>/build/<pkg>-<hash>/out
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|p| p.join("init-static"))
        .unwrap_or_else(|| out_dir.join("init-static"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .args([
            "-p",
            "imgbuild-init",
            "--bin",
            "imgbuild-init",
            "--profile",
            "init",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTFLAGS");
    let built = target_dir.join(TARGET).join("init").join("imgbuild-init");
    match cmd.output() {
        Ok(o) if o.status.success() && built.is_file() => {
            if let Err(e) = fs::copy(&built, &dest) {
                println!("cargo:warning=cannot copy {}: {e}", built.display());
                write_placeholder(&dest);
            }
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().rev().take(15).collect();
            println!(
                "cargo:warning=nested build of imgbuild-init failed ({}); no init embedded, set IMGBUILD_INIT at run time",
                o.status
            );
            for l in tail.into_iter().rev() {
                println!("cargo:warning=  {l}");
            }
            write_placeholder(&dest);
        }
        Err(e) => {
            println!("cargo:warning=cannot run cargo for imgbuild-init: {e}");
            write_placeholder(&dest);
        }
    }
}

fn write_placeholder(dest: &Path) {
    if let Err(e) = fs::write(dest, b"") {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}

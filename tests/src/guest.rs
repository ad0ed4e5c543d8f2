//! The guest under test: built once per test binary by running the
//! workspace's `imgbuild recipe` on a variant of `recipes/busybox.toml`.
//!
//! The variant changes the address, gateway, hostname and MAC to values no
//! default could produce, so a test that finds them in the running guest
//! proves they travelled recipe → builder → init.conf → init → eth0.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use guest_contract::manifest::{GuestNet, Manifest};
use guest_contract::outputs::Output;
use imgrun::guest::GuestDir;

/// The values the variant recipe sets.
pub const HOSTNAME: &str = "e2e-guest";
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);
pub const PREFIX: u8 = 24;
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const MAC: &str = "00:16:3e:e2:e0:09";

/// Errors building the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recipes/busybox.toml no longer contains {0:?}; update the e2e recipe variant")]
    RecipeChanged(String),
    #[error("`{command}` failed ({status}); see its output above")]
    Command { command: String, status: String },
    #[error("the built guest: {0}")]
    Manifest(#[from] imgrun::guest::GuestError),
    #[error("manifest.json says {key} = {found}, the recipe says {want}")]
    Mismatch {
        key: &'static str,
        found: String,
        want: String,
    },
}

/// A built guest: its output directory and manifest.
#[derive(Debug, Clone)]
pub struct Guest {
    pub dir: PathBuf,
    pub built: GuestDir,
}

impl Guest {
    /// What the builder wrote.
    pub fn manifest(&self) -> &Manifest {
        &self.built.manifest
    }

    /// An output file, where the manifest says it is.
    pub fn file(&self, o: Output) -> PathBuf {
        self.built
            .path(o)
            .unwrap_or_else(|e| panic!("the built guest: {e}"))
    }

    /// The guest's network and gateway.
    pub fn net(&self) -> (GuestNet, Ipv4Addr) {
        self.built
            .network()
            .unwrap_or_else(|e| panic!("the built guest: {e}"))
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `<target>/<profile>`, the directory holding this test binary's `deps/`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// The recipe variant's text, from the shipped recipe.
pub fn variant_recipe(shipped: &str) -> Result<String, GuestError> {
    let edits = [
        (
            "hostname = \"busybox\"",
            format!("hostname = \"{HOSTNAME}\""),
        ),
        (
            "address = \"10.99.0.2/24\"",
            format!("address = \"{ADDRESS}/{PREFIX}\""),
        ),
        (
            "gateway = \"10.99.0.1\"",
            format!("gateway = \"{GATEWAY}\"\nmac = \"{MAC}\""),
        ),
    ];
    let mut text = shipped.to_string();
    for (from, to) in edits {
        if !text.contains(from) {
            return Err(GuestError::RecipeChanged(from.to_string()));
        }
        text = text.replacen(from, &to, 1);
    }
    Ok(text)
}

/// The `imgbuild` binary: `$IMGBUILD_E2E_IMGBUILD`, else the workspace's,
/// built (or found up to date) by cargo next to this test binary.
pub fn imgbuild_binary() -> Result<PathBuf, GuestError> {
    if let Some(p) = std::env::var_os("IMGBUILD_E2E_IMGBUILD") {
        return Ok(PathBuf::from(p));
    }
    let profile_dir = profile_dir().ok_or_else(|| GuestError::Io {
        path: PathBuf::from("(current exe)"),
        source: std::io::Error::other("cannot locate the test binary"),
    })?;
    let target_dir = profile_dir.parent().unwrap_or(&profile_dir).to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(p) => p.to_string(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args([
            "build",
            "-q",
            "-p",
            "imgbuild",
            "--bin",
            "imgbuild",
            "--profile",
        ])
        .arg(&profile)
        .arg("--target-dir")
        .arg(&target_dir);
    run(&mut cmd)?;
    Ok(profile_dir.join("imgbuild"))
}

fn run(cmd: &mut Command) -> Result<(), GuestError> {
    let command = format!("{cmd:?}");
    let status = cmd.status().map_err(|source| GuestError::Io {
        path: PathBuf::from(cmd.get_program()),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(GuestError::Command {
            command,
            status: status.to_string(),
        })
    }
}

/// Builds recipe `text` (written to `<out>/<file>`) into `out` with the
/// workspace's imgbuild; the guest is `<out>/<name>`.
pub fn build_text(out: &Path, file: &str, name: &str, text: &str) -> Result<Guest, GuestError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GuestError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let recipe = out.join(file);
    std::fs::write(&recipe, text).map_err(io(&recipe))?;
    let mut cmd = Command::new(imgbuild_binary()?);
    cmd.arg("recipe").arg(&recipe).arg("--out").arg(out);
    run(&mut cmd)?;
    let dir = out.join(name);
    let built = GuestDir::load(&dir)?;
    Ok(Guest { dir, built })
}

/// Builds the variant recipe into `out` and checks the manifest carries its values.
pub fn build(out: &Path) -> Result<Guest, GuestError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GuestError::Io { path, source }
    };
    let shipped_path = workspace().join("recipes/busybox.toml");
    let shipped = std::fs::read_to_string(&shipped_path).map_err(io(&shipped_path))?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let recipe = out.join("busybox-e2e.toml");
    std::fs::write(&recipe, variant_recipe(&shipped)?).map_err(io(&recipe))?;
    let imgbuild = imgbuild_binary()?;
    eprintln!(
        "imgbuild-e2e: building the guest: {} recipe {} --out {}",
        imgbuild.display(),
        recipe.display(),
        out.display()
    );
    let mut cmd = Command::new(&imgbuild);
    cmd.arg("recipe").arg(&recipe).arg("--out").arg(out);
    run(&mut cmd)?;
    let dir = out.join("busybox");
    let built = GuestDir::load(&dir)?;
    let (net, gateway) = built.network()?;
    let checks: [(&'static str, String, String); 5] = [
        (
            "guest.hostname",
            built.manifest.guest.hostname.to_string(),
            HOSTNAME.into(),
        ),
        (
            "guest.address",
            net.address.addr().to_string(),
            ADDRESS.to_string(),
        ),
        (
            "guest.prefix",
            net.address.prefix().to_string(),
            PREFIX.to_string(),
        ),
        ("guest.gateway", gateway.to_string(), GATEWAY.to_string()),
        ("guest.mac", net.mac.to_string(), MAC.into()),
    ];
    for (key, found, want) in checks {
        if found != want {
            return Err(GuestError::Mismatch { key, found, want });
        }
    }
    Ok(Guest { dir, built })
}

/// The guest of this test binary, built on first use.
/// `IMGBUILD_E2E_GUEST=<out/busybox dir>` uses an existing build instead
/// (it must have been built from the same variant recipe).
pub fn shared() -> &'static Guest {
    static GUEST: OnceLock<Result<Guest, String>> = OnceLock::new();
    let r = GUEST.get_or_init(|| {
        if let Some(dir) = std::env::var_os("IMGBUILD_E2E_GUEST") {
            let dir = PathBuf::from(dir);
            return GuestDir::load(&dir)
                .map(|built| Guest { dir, built })
                .map_err(|e| e.to_string());
        }
        let stem = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "e2e".into());
        let out = profile_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("imgbuild-e2e-out")
            .join(stem);
        build(&out).map_err(|e| e.to_string())
    });
    match r {
        Ok(g) => g,
        Err(e) => panic!("cannot build the guest under test: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_changes_every_network_value() {
        let shipped = std::fs::read_to_string(workspace().join("recipes/busybox.toml")).unwrap();
        let v = variant_recipe(&shipped).unwrap();
        assert!(v.contains("address = \"10.77.0.9/24\""));
        assert!(v.contains("gateway = \"10.77.0.1\"\nmac = \"00:16:3e:e2:e0:09\""));
        assert!(v.contains("hostname = \"e2e-guest\""));
        assert!(!v.contains("10.99.0."));
    }

    #[test]
    fn a_changed_recipe_is_reported() {
        let e = variant_recipe("[guest]\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("hostname = \\\"busybox\\\""), "{e}");
    }
}

//! Loading kernel modules with `finit_module`, in the order the builder
//! wrote. A missing module or one that fails to load is logged and skipped.

use crate::sys::Sys;
use imgbuild_modules::dep::ModulesDep;
use imgbuild_modules::name;
use imgbuild_modules::resolve;

/// How the module loads went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Paths loaded (or already loaded).
    pub loaded: Vec<String>,
    /// Entries skipped, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Expands the configured entries into module file paths relative to
/// `/lib/modules/<kver>`: paths stay as they are; a bare module name is
/// resolved (with its dependencies) through `modules.dep`.
pub fn expand<S: Sys>(
    sys: &mut S,
    kver: &str,
    entries: &[String],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut paths: Vec<String> = Vec::new();
    let mut skipped = Vec::new();
    let mut dep: Option<Option<ModulesDep>> = None;
    for e in entries {
        if name::is_module_path(e) {
            if !paths.contains(e) {
                paths.push(e.clone());
            }
            continue;
        }
        let d = dep.get_or_insert_with(|| {
            let file = format!("/lib/modules/{kver}/modules.dep");
            match sys.read_to_string(&file).map(|t| ModulesDep::parse(&t)) {
                Ok(Ok(d)) => Some(d),
                Ok(Err(err)) => {
                    sys.log(&format!("{file}: {err}"));
                    None
                }
                Err(err) => {
                    sys.log(&format!("{file}: {err}"));
                    None
                }
            }
        });
        let Some(d) = d else {
            skipped.push((e.clone(), "no usable modules.dep".to_owned()));
            continue;
        };
        match resolve::load_order(d, &[e.as_str()]) {
            Ok(order) => {
                for p in order {
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
            }
            Err(err) => skipped.push((e.clone(), err.to_string())),
        }
    }
    (paths, skipped)
}

/// Loads the configured modules in order; never fails as a whole.
pub fn load_all<S: Sys>(sys: &mut S, kver: &str, entries: &[String]) -> LoadReport {
    let (paths, mut skipped) = expand(sys, kver, entries);
    for (e, why) in &skipped {
        sys.log(&format!("module {e}: {why}; skipped"));
    }
    let mut loaded = Vec::new();
    for rel in paths {
        let full = format!("/lib/modules/{kver}/{rel}");
        if !sys.exists(&full) {
            sys.log(&format!("module {full} is missing; skipped"));
            skipped.push((rel, "missing".to_owned()));
            continue;
        }
        match sys.load_module(&full) {
            Ok(()) => {
                sys.log(&format!("loaded module {}", name::from_path(&rel)));
                loaded.push(rel);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                sys.log(&format!("module {} already loaded", name::from_path(&rel)));
                loaded.push(rel);
            }
            Err(e) => {
                sys.log(&format!("module {full} failed to load: {e}; skipped"));
                skipped.push((rel, e.to_string()));
            }
        }
    }
    LoadReport { loaded, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const K: &str = "6.1.0-56-amd64";

    #[test]
    fn order_kept_missing_and_failing_skipped() {
        let mut sys = FakeSys::new();
        for m in ["a.ko", "b.ko", "c.ko"] {
            sys.paths.insert(format!("/lib/modules/{K}/{m}"));
        }
        sys.fail
            .insert(format!("load_module /lib/modules/{K}/b.ko"));
        let r = load_all(
            &mut sys,
            K,
            &[
                "c.ko".into(),
                "missing.ko".into(),
                "b.ko".into(),
                "a.ko".into(),
            ],
        );
        assert_eq!(
            sys.calls,
            [
                format!("load_module /lib/modules/{K}/c.ko"),
                format!("load_module /lib/modules/{K}/b.ko"),
                format!("load_module /lib/modules/{K}/a.ko"),
            ]
        );
        assert_eq!(r.loaded, ["c.ko", "a.ko"]);
        assert_eq!(r.skipped.len(), 2);
        assert!(
            sys.logs
                .iter()
                .any(|l| l.contains("missing.ko is missing; skipped"))
        );
    }

    #[test]
    fn bare_names_resolved_with_modules_dep() {
        let mut sys = FakeSys::new();
        sys.add_file(
            &format!("/lib/modules/{K}/modules.dep"),
            b"kernel/net/virtio_net.ko: kernel/net/net_failover.ko kernel/core/failover.ko\n\
              kernel/net/net_failover.ko: kernel/core/failover.ko\nkernel/core/failover.ko:\n",
        );
        for m in [
            "kernel/net/virtio_net.ko",
            "kernel/net/net_failover.ko",
            "kernel/core/failover.ko",
        ] {
            sys.paths.insert(format!("/lib/modules/{K}/{m}"));
        }
        let r = load_all(&mut sys, K, &["virtio-net".into(), "nosuch".into()]);
        assert_eq!(
            r.loaded,
            [
                "kernel/core/failover.ko",
                "kernel/net/net_failover.ko",
                "kernel/net/virtio_net.ko"
            ]
        );
        assert_eq!(r.skipped.len(), 1);
        assert!(r.skipped[0].1.contains("not listed"));
    }
}

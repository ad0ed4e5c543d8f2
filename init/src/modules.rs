//! Loading kernel modules with `finit_module`, in the order the builder
//! wrote. A missing module or one that fails to load is logged and skipped.
//! Xen's own modules (`xen-blkfront`, `xen-netfront`, … — every `xen_*`
//! name) are skipped when the kernel does not run on Xen: each would only
//! be relocated and fail with ENODEV (≈ 60 ms apiece under TCG).

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

/// Says `xen` exactly when the kernel runs on Xen (PV, PVH or HVM: its
/// sysfs entries are registered only then; `/sys/bus/xen` is there always).
pub const HYPERVISOR_TYPE: &str = "/sys/hypervisor/type";

fn on_xen<S: Sys>(sys: &S) -> bool {
    sys.read_to_string(HYPERVISOR_TYPE)
        .is_ok_and(|t| t.trim() == "xen")
}

/// Whether a module is one of Xen's own, useless off Xen.
pub fn is_xen_module(rel: &str) -> bool {
    name::from_path(rel).starts_with("xen_")
}

/// Loads the configured modules in order; never fails as a whole.
pub fn load_all<S: Sys>(sys: &mut S, kver: &str, entries: &[String]) -> LoadReport {
    let (paths, mut skipped) = expand(sys, kver, entries);
    for (e, why) in &skipped {
        sys.log(&format!("module {e}: {why}; skipped"));
    }
    let mut xen: Option<bool> = None;
    let mut loaded = Vec::new();
    for rel in paths {
        let full = format!("/lib/modules/{kver}/{rel}");
        if !sys.exists(&full) {
            sys.log(&format!("module {full} is missing; skipped"));
            skipped.push((rel, "missing".to_owned()));
            continue;
        }
        if is_xen_module(&rel) && !*xen.get_or_insert_with(|| on_xen(sys)) {
            sys.log(&format!(
                "module {}: not on Xen ({HYPERVISOR_TYPE}); skipped",
                name::from_path(&rel)
            ));
            skipped.push((rel, "not on Xen".to_owned()));
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
    fn xen_modules_load_only_on_xen() {
        let entries: Vec<String> = [
            "kernel/drivers/block/xen-blkfront.ko",
            "kernel/drivers/block/virtio_blk.ko",
            "kernel/drivers/net/xen-netfront.ko.xz",
        ]
        .map(String::from)
        .to_vec();
        let mut sys = FakeSys::new();
        for m in &entries {
            sys.paths.insert(format!("/lib/modules/{K}/{m}"));
        }
        let r = load_all(&mut sys, K, &entries);
        assert_eq!(r.loaded, ["kernel/drivers/block/virtio_blk.ko"]);
        assert_eq!(r.skipped.len(), 2);
        assert!(
            sys.logs
                .iter()
                .any(|l| l == "module xen_blkfront: not on Xen (/sys/hypervisor/type); skipped"),
            "{:?}",
            sys.logs
        );
        sys.files
            .insert(HYPERVISOR_TYPE.to_owned(), b"kvm\n".to_vec());
        assert_eq!(load_all(&mut sys, K, &entries).loaded.len(), 1);
        sys.files
            .insert(HYPERVISOR_TYPE.to_owned(), b"xen\n".to_vec());
        sys.calls.clear();
        let r = load_all(&mut sys, K, &entries);
        assert_eq!(r.loaded.len(), 3, "{r:?}");
        assert_eq!(sys.calls.len(), 3, "{:?}", sys.calls);
        assert!(is_xen_module("kernel/drivers/xen/xen-evtchn.ko"));
        assert!(!is_xen_module("kernel/drivers/net/xennet.ko"));
    }

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

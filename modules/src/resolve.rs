//! Dependency resolution: the order in which modules must be loaded so that
//! every module comes after all modules it depends on.

use crate::dep::ModulesDep;

/// Why a load order could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// A requested module is not in `modules.dep`.
    #[error("module {0:?} is not listed in modules.dep")]
    NotFound(String),
    /// A dependency named in `modules.dep` has no line of its own.
    #[error("module {module:?} depends on {dep:?}, which has no modules.dep entry")]
    MissingDependency {
        /// The module whose dependency is missing.
        module: String,
        /// The missing dependency's path.
        dep: String,
    },
    /// Modules depend on each other in a cycle (listed in cycle order).
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Returns the module paths to load, dependencies first, each once, for the
/// requested modules (names or paths), in request order where the
/// dependencies allow it.
pub fn load_order<S: AsRef<str>>(
    dep: &ModulesDep,
    wanted: &[S],
) -> Result<Vec<String>, ResolveError> {
    let mut order: Vec<String> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for w in wanted {
        let w = w.as_ref();
        let entry = dep
            .find(w)
            .ok_or_else(|| ResolveError::NotFound(w.to_owned()))?;
        visit(dep, &entry.path, &mut order, &mut stack)?;
    }
    Ok(order)
}

fn visit(
    dep: &ModulesDep,
    path: &str,
    order: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), ResolveError> {
    if order.iter().any(|p| p == path) {
        return Ok(());
    }
    if let Some(pos) = stack.iter().position(|p| p == path) {
        let mut cycle: Vec<String> = stack.get(pos..).map(<[String]>::to_vec).unwrap_or_default();
        cycle.push(path.to_owned());
        return Err(ResolveError::Cycle(cycle));
    }
    let Some(entry) = dep.entries.iter().find(|e| e.path == path) else {
        return Err(ResolveError::NotFound(path.to_owned()));
    };
    stack.push(path.to_owned());
    // depmod lists the nearest dependency first and the deepest last, so load
    // from the end; the recursion makes the order right for any listing.
    for d in entry.deps.iter().rev() {
        if !dep.entries.iter().any(|e| &e.path == d) {
            return Err(ResolveError::MissingDependency {
                module: path.to_owned(),
                dep: d.clone(),
            });
        }
        visit(dep, d, order, stack)?;
    }
    stack.pop();
    order.push(path.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(text: &str) -> ModulesDep {
        ModulesDep::parse(text).unwrap()
    }

    #[test]
    fn dependencies_come_first_once() {
        let d = dep("n/virtio_net.ko: n/net_failover.ko c/failover.ko\n\
                     n/net_failover.ko: c/failover.ko\n\
                     c/failover.ko:\n\
                     b/virtio_blk.ko:\n");
        let order = load_order(&d, &["virtio-net", "virtio_blk", "failover"]).unwrap();
        assert_eq!(
            order,
            [
                "c/failover.ko",
                "n/net_failover.ko",
                "n/virtio_net.ko",
                "b/virtio_blk.ko"
            ]
        );
    }

    #[test]
    fn order_holds_even_if_listing_is_unsorted() {
        // Deps listed deepest-first (not depmod's order): still correct.
        let d = dep("a.ko: c.ko b.ko\nb.ko: c.ko\nc.ko:\n");
        assert_eq!(load_order(&d, &["a"]).unwrap(), ["c.ko", "b.ko", "a.ko"]);
    }

    #[test]
    fn errors() {
        let d = dep("a.ko: b.ko\nb.ko: a.ko\nx.ko: y.ko\n");
        assert_eq!(
            load_order(&d, &["zz"]),
            Err(ResolveError::NotFound("zz".into()))
        );
        assert_eq!(
            load_order(&d, &["x"]),
            Err(ResolveError::MissingDependency {
                module: "x.ko".into(),
                dep: "y.ko".into()
            })
        );
        let err = load_order(&d, &["a"]).unwrap_err();
        assert_eq!(
            err,
            ResolveError::Cycle(vec!["a.ko".into(), "b.ko".into(), "a.ko".into()])
        );
        assert_eq!(err.to_string(), "dependency cycle: a.ko -> b.ko -> a.ko");
    }
}

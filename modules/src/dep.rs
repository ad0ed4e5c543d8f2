//! `modules.dep` in the kernel's (depmod's) text format:
//! one line per module, `kernel/a/b.ko: kernel/c/d.ko kernel/e/f.ko`.
//!
//! Paths are relative to `/lib/modules/<kver>`; the dependency list is what
//! depmod writes (all modules `b` needs, nearest dependency first).

use crate::name;

/// One line of `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    /// Module file path relative to `/lib/modules/<kver>`.
    pub path: String,
    /// Paths of the modules this one depends on.
    pub deps: Vec<String>,
}

impl DepEntry {
    /// The module's normalised name (`xen-netfront.ko` → `xen_netfront`).
    pub fn name(&self) -> String {
        name::from_path(&self.path)
    }
}

/// A whole `modules.dep` file, entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesDep {
    /// The entries, in the order they were parsed or added.
    pub entries: Vec<DepEntry>,
}

/// A malformed `modules.dep` line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DepError {
    /// A line lacks the `:` separating the module from its dependencies.
    #[error("modules.dep line {line}: missing ':' after the module path")]
    MissingColon {
        /// 1-based line number.
        line: usize,
    },
    /// A line has an empty module path or a path that is not a `.ko` file.
    #[error(
        "modules.dep line {line}: {path:?} is not a module path (.ko, .ko.xz, .ko.zst, .ko.gz)"
    )]
    BadPath {
        /// 1-based line number.
        line: usize,
        /// The offending path.
        path: String,
    },
    /// The same module appears on two lines.
    #[error("modules.dep line {line}: module {path:?} already listed on line {first}")]
    Duplicate {
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number of the first occurrence.
        first: usize,
        /// The module path.
        path: String,
    },
}

impl ModulesDep {
    /// Parses the text of a `modules.dep` file. Blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, DepError> {
        let mut entries: Vec<DepEntry> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (path, rest) = trimmed
                .split_once(':')
                .ok_or(DepError::MissingColon { line })?;
            let path = path.trim();
            check_path(path, line)?;
            let deps: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            for d in &deps {
                check_path(d, line)?;
            }
            if let Some(pos) = entries.iter().position(|e| e.path == path) {
                return Err(DepError::Duplicate {
                    line,
                    first: lines_of.get(pos).copied().unwrap_or(0),
                    path: path.to_owned(),
                });
            }
            entries.push(DepEntry {
                path: path.to_owned(),
                deps,
            });
            lines_of.push(line);
        }
        Ok(Self { entries })
    }

    /// Renders in depmod's format, one `path: dep dep` line per entry.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.path);
            out.push(':');
            for d in &e.deps {
                out.push(' ');
                out.push_str(d);
            }
            out.push('\n');
        }
        out
    }

    /// Finds an entry by module name (`xen-netfront`, `xen_netfront`) or by path.
    pub fn find(&self, module: &str) -> Option<&DepEntry> {
        if let Some(e) = self.entries.iter().find(|e| e.path == module) {
            return Some(e);
        }
        let wanted = if name::is_module_path(module) {
            name::from_path(module)
        } else {
            name::normalize(module)
        };
        self.entries.iter().find(|e| e.name() == wanted)
    }

    /// Adds or replaces the entry for `path`.
    pub fn insert(&mut self, entry: DepEntry) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.path == entry.path) {
            *e = entry;
        } else {
            self.entries.push(entry);
        }
    }
}

fn check_path(path: &str, line: usize) -> Result<(), DepError> {
    if path.is_empty() || !name::is_module_path(path) {
        return Err(DepError::BadPath {
            line,
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
kernel/net/core/failover.ko:\n\
kernel/drivers/net/xen-netfront.ko.xz:\n";

    #[test]
    fn parse_and_render_round_trip() {
        let dep = ModulesDep::parse(SAMPLE).unwrap();
        assert_eq!(dep.entries.len(), 4);
        assert_eq!(dep.entries[0].deps.len(), 2);
        assert_eq!(dep.entries[2].deps, Vec::<String>::new());
        assert_eq!(dep.render(), SAMPLE);
    }

    #[test]
    fn find_by_name_or_path() {
        let dep = ModulesDep::parse(SAMPLE).unwrap();
        assert_eq!(
            dep.find("xen_netfront").unwrap().path,
            "kernel/drivers/net/xen-netfront.ko.xz"
        );
        assert_eq!(dep.find("xen-netfront").unwrap().name(), "xen_netfront");
        assert!(dep.find("kernel/net/core/failover.ko").is_some());
        assert!(dep.find("nope").is_none());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            ModulesDep::parse("a.ko: b.ko\n\nbroken line\n"),
            Err(DepError::MissingColon { line: 3 })
        );
        assert_eq!(
            ModulesDep::parse("a.ko: b.txt\n"),
            Err(DepError::BadPath {
                line: 1,
                path: "b.txt".into()
            })
        );
        let err = ModulesDep::parse("a.ko:\n# c\na.ko:\n").unwrap_err();
        assert_eq!(
            err,
            DepError::Duplicate {
                line: 3,
                first: 1,
                path: "a.ko".into()
            }
        );
        assert!(err.to_string().contains("line 3"));
    }
}

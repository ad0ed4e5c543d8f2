//! What a Xen host says about its hypervisor in `xl info`: the version,
//! the `virt_caps` word list the migration preflight ([`super::preflight`])
//! judges, and the build where it is visible.
//!
//! The format is `tools/xl/xl_info.c`'s: one `key<padding>: value` line per
//! field, in a fixed order. `virt_caps` is `:` followed by ` word` for every
//! capability the hypervisor reports (`XEN_SYSCTL_physinfo`): in Xen 4.17
//! `pv hvm hvm_directio pv_directio hap shadow iommu_hap_pt_share vmtrace
//! vpmu gnttab-v1 gnttab-v2`, in that order. `shadow` is there exactly when
//! the hypervisor was built with `CONFIG_SHADOW_PAGING`.

use std::fmt;

use serde::Serialize;

/// `xen_version`: `4.17.5`, `4.17.4-pre`, `4.17-unstable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenVersion {
    pub major: u32,
    pub minor: u32,
    /// What follows `major.minor`: `.5`, `.4-pre`, `-unstable` (`xen_extra`).
    pub extra: String,
}

impl XenVersion {
    /// Parses `4.17.5` (any `extra` after `major.minor`).
    pub fn parse(s: &str) -> Option<XenVersion> {
        let s = s.trim();
        let (major, rest) = s.split_once('.')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (minor, extra) = rest.split_at(digits);
        Some(XenVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            extra: extra.to_string(),
        })
    }
}

impl fmt::Display for XenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}{}", self.major, self.minor, self.extra)
    }
}

impl Serialize for XenVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How the hypervisor was built, as far as `xl info` shows it (Debian's
/// builds leave `xen_changeset` empty; the compile date and the build id
/// tell one build from another).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct XenBuild {
    pub cc_compiler: Option<String>,
    pub cc_compile_by: Option<String>,
    pub cc_compile_domain: Option<String>,
    pub cc_compile_date: Option<String>,
    pub build_id: Option<String>,
}

/// A host's hypervisor as `xl info` describes it. A field is `None` when
/// the line is missing or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostCaps {
    pub xen_version: Option<XenVersion>,
    /// The `virt_caps` words; `None` when xl prints no such line (an
    /// empty line is `Some` of no words: the hypervisor reports none).
    pub virt_caps: Option<Vec<String>>,
    /// `xen_caps`: the guest ABIs, `xen-3.0-x86_64 hvm-3.0-x86_64 …`.
    pub xen_caps: Option<Vec<String>>,
    pub xen_changeset: Option<String>,
    pub xen_commandline: Option<String>,
    pub build: XenBuild,
}

/// Words that xl prints only since it also prints `shadow` (the `virt_caps`
/// format grew from `hvm hvm_directio directio` to `pv … hap` to `pv … hap
/// shadow iommu_hap_pt_share`, then vmtrace, vpmu, gnttab-v1/-v2 (Xen
/// 4.16; gnttab-v1 is always on), assisted_x(2)apic (4.18)).
const SINCE_SHADOW: [&str; 8] = [
    "shadow",
    "iommu_hap_pt_share",
    "vmtrace",
    "vpmu",
    "gnttab-v1",
    "gnttab-v2",
    "assisted_xapic",
    "assisted_x2apic",
];

impl HostCaps {
    /// Reads `xl info` output; lines it does not know are ignored.
    pub fn parse(info: &str) -> HostCaps {
        let mut c = HostCaps::default();
        let (mut major, mut minor, mut extra, mut version) = (None, None, None, None);
        for line in info.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let text = || (!value.is_empty()).then(|| value.to_string());
            let words = || value.split_whitespace().map(str::to_string).collect();
            match key.trim() {
                "xen_major" => major = value.parse().ok(),
                "xen_minor" => minor = value.parse().ok(),
                "xen_extra" => extra = Some(value.to_string()),
                "xen_version" => version = XenVersion::parse(value),
                "virt_caps" => c.virt_caps = Some(words()),
                "xen_caps" => c.xen_caps = text().map(|_| words()),
                "xen_changeset" => c.xen_changeset = text(),
                "xen_commandline" => c.xen_commandline = text(),
                "cc_compiler" => c.build.cc_compiler = text(),
                "cc_compile_by" => c.build.cc_compile_by = text(),
                "cc_compile_domain" => c.build.cc_compile_domain = text(),
                "cc_compile_date" => c.build.cc_compile_date = text(),
                "build_id" => c.build.build_id = text(),
                _ => {}
            }
        }
        c.xen_version = match (major, minor, extra) {
            (Some(major), Some(minor), Some(extra)) => Some(XenVersion {
                major,
                minor,
                extra,
            }),
            _ => version,
        };
        c
    }

    /// True if `virt_caps` has `word`.
    pub fn has(&self, word: &str) -> bool {
        self.virt_caps
            .as_ref()
            .is_some_and(|w| w.iter().any(|x| x == word))
    }

    /// True if the `virt_caps` line can be trusted to name shadow paging,
    /// HAP, HVM and PV when the hypervisor has them: it is there and comes
    /// from an xl that prints `shadow` (see [`SINCE_SHADOW`]). An older
    /// line lacks the word even on a hypervisor that has shadow paging.
    pub fn checkable(&self) -> bool {
        SINCE_SHADOW.iter().any(|w| self.has(w))
    }

    /// `4.17.7`, or `unknown version`.
    pub fn version_text(&self) -> String {
        self.xen_version
            .as_ref()
            .map_or_else(|| "unknown version".to_string(), ToString::to_string)
    }

    /// `pv hvm hap`, or `(no virt_caps line)`.
    pub fn virt_caps_text(&self) -> String {
        match &self.virt_caps {
            None => "(no virt_caps line)".to_string(),
            Some(w) if w.is_empty() => "(none)".to_string(),
            Some(w) => w.join(" "),
        }
    }

    /// One line for progress: `Xen 4.17.7, virt_caps pv hvm hap …, built …`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Xen {}, virt_caps {}",
            self.version_text(),
            self.virt_caps_text()
        );
        if let Some(d) = &self.build.cc_compile_date {
            s.push_str(&format!(", built {d}"));
        }
        if let Some(id) = &self.build.build_id {
            s.push_str(&format!(", build id {id}"));
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! `xl info` of the nested-Xen test's hosts (`runner/tests/data/xl-info/`).

    /// Debian's 4.17.5+72 (shadow paging), no `+svm`.
    pub const DEBIAN_4_17_5: &str = include_str!("../../tests/data/xl-info/4.17.5+72.txt");
    /// Debian's 4.17.5+72 with `-cpu …,+svm`.
    pub const DEBIAN_4_17_5_SVM: &str = include_str!("../../tests/data/xl-info/4.17.5+72-svm.txt");
    /// Debian's security build 4.17.7+13 (no shadow paging), no `+svm`.
    pub const DEBIAN_4_17_7: &str = include_str!("../../tests/data/xl-info/4.17.7+13.txt");
    /// Debian's security build 4.17.7+13 with `+svm`.
    pub const DEBIAN_4_17_7_SVM: &str = include_str!("../../tests/data/xl-info/4.17.7+13-svm.txt");
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn words(s: &str) -> Option<Vec<String>> {
        Some(s.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn the_security_build_has_no_shadow_paging() {
        let c = HostCaps::parse(DEBIAN_4_17_7_SVM);
        assert_eq!(c.version_text(), "4.17.7");
        assert_eq!(c.virt_caps, words("pv hvm hap gnttab-v1 gnttab-v2"));
        assert!(c.checkable() && c.has("hap") && !c.has("shadow"));
        assert_eq!(
            c.xen_caps,
            words("xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64")
        );
        assert_eq!(c.xen_changeset, None);
        assert!(
            c.xen_commandline
                .as_deref()
                .is_some_and(|l| l.contains("dom0_mem=1024M"))
        );
        assert_eq!(
            c.build.cc_compile_date.as_deref(),
            Some("Wed Nov  4 16:52:28 UTC 2026")
        );
        assert_eq!(
            c.build.build_id.as_deref(),
            Some("151b373fd64b321593bf987fd923cd10dabadac4")
        );
        assert_eq!(c.build.cc_compile_by.as_deref(), Some("pkg-xen-devel"));
    }

    #[test]
    fn the_pinned_build_has_it_with_and_without_hvm() {
        let c = HostCaps::parse(DEBIAN_4_17_5);
        assert_eq!(
            c.xen_version,
            Some(XenVersion {
                major: 4,
                minor: 17,
                extra: ".5".into()
            })
        );
        assert_eq!(c.virt_caps, words("pv shadow gnttab-v1 gnttab-v2"));
        assert!(!c.has("hvm"));
        let svm = HostCaps::parse(DEBIAN_4_17_5_SVM);
        assert_eq!(
            svm.virt_caps,
            words("pv hvm hap shadow gnttab-v1 gnttab-v2")
        );
        assert_eq!(
            svm.summary().split(", built").next(),
            Some("Xen 4.17.5, virt_caps pv hvm hap shadow gnttab-v1 gnttab-v2")
        );
        let none = HostCaps::parse(DEBIAN_4_17_7);
        assert_eq!(none.virt_caps_text(), "pv gnttab-v1 gnttab-v2");
    }

    #[test]
    fn versions_and_old_formats() {
        for (s, want) in [
            ("4.17.5", "4.17.5"),
            ("4.17.4-pre", "4.17.4-pre"),
            ("4.17-unstable", "4.17-unstable"),
        ] {
            assert_eq!(
                XenVersion::parse(s).map(|v| v.to_string()).as_deref(),
                Some(want)
            );
        }
        assert_eq!(XenVersion::parse("x.y"), None);
        // Without xen_major/minor/extra the xen_version line is read.
        let c = HostCaps::parse(
            "xen_version            : 4.11.4\nvirt_caps              : hvm hvm_directio\n",
        );
        assert_eq!(c.version_text(), "4.11.4");
        // An xl from before `shadow` was a word: its line proves nothing.
        assert!(!c.checkable());
        let c = HostCaps::parse("virt_caps              : pv hvm hvm_directio pv_directio hap\n");
        assert!(!c.checkable());
        // No line at all, and an empty one.
        let c = HostCaps::parse("host                   : h\n");
        assert_eq!((c.virt_caps.clone(), c.checkable()), (None, false));
        assert_eq!(c.virt_caps_text(), "(no virt_caps line)");
        assert_eq!(c.version_text(), "unknown version");
        let c = HostCaps::parse("virt_caps              :\n");
        assert_eq!(c.virt_caps, Some(vec![]));
    }

    #[test]
    fn serializes_the_version_as_text() {
        let v = serde_json::to_value(HostCaps::parse(DEBIAN_4_17_7)).unwrap();
        assert_eq!(v["xen_version"], "4.17.7");
        assert_eq!(v["virt_caps"][0], "pv");
        assert_eq!(
            v["build"]["build_id"],
            "151b373fd64b321593bf987fd923cd10dabadac4"
        );
        assert_eq!(v["xen_changeset"], serde_json::Value::Null);
    }
}

//! The migration preflight: before anything is copied to or created on any
//! host, every host of the route must be able to run the guest and to
//! live-migrate it, as its `xl info` ([`HostCaps`]) tells. A single-host
//! migration counts: it needs log-dirty tracking like any other.
//!
//! Live migration tracks the pages the guest dirties while it runs
//! (log-dirty). A PV guest's log-dirty mode is shadow paging's: a
//! hypervisor built without `CONFIG_SHADOW_PAGING` (Debian 12's 4.17.7+13
//! security build; off by default in every stable branch since XSA-495)
//! runs PV guests but fails `xl migrate` late with `Failed to enable
//! logdirty: 95`. A PVH guest tracks with HAP (EPT/NPT), or with shadow
//! paging where there is no HAP.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use guest_contract::GuestType;

use super::caps::HostCaps;
use super::xlcfg::XlCfg;
use crate::report::HostReport;

/// Why the check will not run.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The xl.cfg is an HVM domain's.
    #[error(
        "preflight: guest {name} is an HVM domain ({path}: type = \"hvm\"); imgbuild writes PV and PVH guests, and the check runs only those"
    )]
    NotOurs { name: String, path: PathBuf },
    /// A host on the route cannot run or live-migrate the guest.
    #[error("{0}")]
    Refused(Refusal),
}

/// The guest type of an xl.cfg (PV or PVH), refusing what imgbuild does
/// not write.
pub fn guest_type(cfg: &XlCfg) -> Result<GuestType, PreflightError> {
    match cfg.guest_type {
        GuestType::Hvm => Err(PreflightError::NotOurs {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
        }),
        t @ (GuestType::Pv | GuestType::Pvh) => Ok(t),
    }
}

/// What one host lacks for the guest, and what would work there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unfit {
    pub host: String,
    pub xen_version: String,
    pub virt_caps: String,
    /// What it cannot do with the guest: `run`, `live-migrate`.
    pub cannot: &'static str,
    /// `its hypervisor has no shadow paging`.
    pub missing: String,
    /// Why the guest needs it.
    pub why: String,
    /// What would work on that host.
    pub works: String,
}

/// A host's verdict for a guest type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It can run and live-migrate the guest.
    Fit,
    /// Its `xl info` cannot tell (why).
    Unchecked(String),
    /// It cannot.
    Unfit(Unfit),
}

/// PV runs where the hypervisor has PV and migrates where it has shadow paging.
fn pv_fits(c: &HostCaps) -> bool {
    c.has("pv") && c.has("shadow")
}

/// PVH runs where there is HVM and migrates with HAP or shadow paging.
fn pvh_fits(c: &HostCaps) -> bool {
    c.has("hvm") && (c.has("hap") || c.has("shadow"))
}

const TRY_PVH: &str =
    "a PVH guest ([xen] type = \"pvh\" in the recipe; it migrates with HAP log-dirty tracking)";
const TRY_PV: &str =
    "a PV guest ([xen] type = \"pv\" in the recipe; it migrates with shadow paging)";
const TRY_SHADOW: &str = "a hypervisor built with CONFIG_SHADOW_PAGING=y (Debian 12's 4.17.5+72-g01140da4e8-1 is; its 4.17.7+13 security build is not)";
const NO_HVM: &str = "Xen sees no hardware virtualisation: VT-x/AMD-V is off in the firmware, or this is a nested host started without +vmx/+svm";

/// Whether the host `name` with `caps` can run and live-migrate a guest of
/// type `ty` (an HVM guest, which [`guest_type`] refuses, is not judged).
pub fn judge(name: &str, caps: &HostCaps, ty: GuestType) -> Verdict {
    if ty == GuestType::Hvm {
        return Verdict::Unchecked(format!(
            "preflight: host {name}: the check does not judge HVM guests"
        ));
    }
    if !caps.checkable() {
        let why = match &caps.virt_caps {
            None => "its xl info has no virt_caps line".to_string(),
            Some(_) => format!(
                "its xl info's virt_caps ({}) comes from an xl that does not name shadow paging",
                caps.virt_caps_text()
            ),
        };
        return Verdict::Unchecked(format!(
            "preflight: host {name} (Xen {}): cannot check that it can live-migrate a {ty} guest: {why}; a migration it cannot do fails in xl migrate (\"Failed to enable logdirty\")",
            caps.version_text()
        ));
    }
    let unfit = |cannot, missing: &str, why: &str, works: String| {
        Verdict::Unfit(Unfit {
            host: name.to_string(),
            xen_version: caps.version_text(),
            virt_caps: caps.virt_caps_text(),
            cannot,
            missing: missing.to_string(),
            why: why.to_string(),
            works,
        })
    };
    match ty {
        GuestType::Pv if !caps.has("pv") => unfit(
            "run",
            "its hypervisor was built without PV support",
            "which PV guests need (CONFIG_PV)",
            if pvh_fits(caps) {
                format!("{TRY_PVH}, or a hypervisor built with CONFIG_PV=y")
            } else {
                "a hypervisor built with CONFIG_PV=y and CONFIG_SHADOW_PAGING=y".to_string()
            },
        ),
        GuestType::Pv if !caps.has("shadow") => unfit(
            "live-migrate",
            "its hypervisor has no shadow paging",
            "which PV migration needs for log-dirty tracking",
            if pvh_fits(caps) {
                format!("{TRY_PVH}, or {TRY_SHADOW}")
            } else {
                format!(
                    "{TRY_SHADOW}; a PVH guest would need hvm and hap, which it lacks too ({NO_HVM})"
                )
            },
        ),
        GuestType::Pvh if !caps.has("hvm") => unfit(
            "run",
            "its hypervisor offers no HVM",
            &format!("which PVH guests need: {NO_HVM}"),
            if pv_fits(caps) {
                TRY_PV.to_string()
            } else {
                "a host whose CPU virtualisation (VT-x/AMD-V) Xen can use".to_string()
            },
        ),
        GuestType::Pvh if !pvh_fits(caps) => unfit(
            "run or live-migrate",
            "its hypervisor has neither HAP nor shadow paging",
            "one of which a PVH guest needs for its memory and for log-dirty tracking",
            if pv_fits(caps) {
                TRY_PV.to_string()
            } else {
                format!("a CPU with EPT/NPT (HAP), or {TRY_SHADOW}")
            },
        ),
        GuestType::Pv | GuestType::Pvh | GuestType::Hvm => Verdict::Fit,
    }
}

/// A refused check: every host's capabilities, and the hosts that cannot.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub guest: String,
    pub guest_type: GuestType,
    pub hosts: Vec<HostReport>,
    pub refused: Vec<Unfit>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "preflight: host {} (Xen {}) cannot {} {} guest {}: {} (xl info virt_caps: {}), {}. What works there: {}.",
                u.host,
                u.xen_version,
                u.cannot,
                self.guest_type,
                self.guest,
                u.missing,
                u.virt_caps,
                u.why,
                u.works
            )?;
        }
        Ok(())
    }
}

/// Judges every host (`hosts`: each host's name and capabilities, in route
/// order). Returns a note per host that could not be checked, or the
/// refusal naming every host that cannot run or migrate the guest.
pub fn check(
    guest: &str,
    ty: GuestType,
    hosts: &[HostReport],
) -> Result<Vec<String>, PreflightError> {
    let mut notes = Vec::new();
    let mut refused = Vec::new();
    for h in hosts {
        match judge(&h.name, &h.caps, ty) {
            Verdict::Fit => {}
            Verdict::Unchecked(n) => notes.push(n),
            Verdict::Unfit(u) => refused.push(u),
        }
    }
    if refused.is_empty() {
        Ok(notes)
    } else {
        Err(PreflightError::Refused(Refusal {
            guest: guest.to_string(),
            guest_type: ty,
            hosts: hosts.to_vec(),
            refused,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::fixtures::*;
    use super::*;

    fn host(name: &str, info: &str) -> HostReport {
        HostReport {
            name: name.into(),
            caps: HostCaps::parse(info),
            storage: None,
        }
    }

    fn verdict(info: &str, ty: GuestType) -> Verdict {
        judge("h", &HostCaps::parse(info), ty)
    }

    fn caps(words: &str) -> String {
        format!("xen_version            : 4.17.7\nvirt_caps              : {words}\n")
    }

    #[test]
    fn the_rules_per_host() {
        use GuestType::{Pv, Pvh};
        // (virt_caps, guest type, what it cannot do; "" = fit)
        let table = [
            ("pv hvm hap shadow gnttab-v1 gnttab-v2", Pv, ""),
            ("pv hvm hap shadow gnttab-v1 gnttab-v2", Pvh, ""),
            ("pv shadow gnttab-v1 gnttab-v2", Pv, ""),
            ("pv shadow gnttab-v1 gnttab-v2", Pvh, "run"),
            ("pv hvm hap gnttab-v1 gnttab-v2", Pv, "live-migrate"),
            ("pv hvm hap gnttab-v1 gnttab-v2", Pvh, ""),
            ("pv gnttab-v1 gnttab-v2", Pv, "live-migrate"),
            ("pv gnttab-v1 gnttab-v2", Pvh, "run"),
            // PVH migrates with shadow paging where there is no HAP.
            ("hvm shadow gnttab-v1", Pvh, ""),
            ("hvm shadow gnttab-v1", Pv, "run"),
            ("pv hvm gnttab-v1", Pvh, "run or live-migrate"),
            ("gnttab-v1", Pv, "run"),
        ];
        for (words, ty, want) in table {
            let got = match verdict(&caps(words), ty) {
                Verdict::Fit => "",
                Verdict::Unfit(u) => u.cannot,
                Verdict::Unchecked(n) => panic!("{words}: {n}"),
            };
            assert_eq!(got, want, "{ty} on {words}");
        }
    }

    #[test]
    fn the_security_build_refuses_pv_and_says_what_works() {
        let hosts = [
            host("root@10.99.0.11", DEBIAN_4_17_5_SVM),
            host("root@10.99.0.12", DEBIAN_4_17_7_SVM),
        ];
        let Err(PreflightError::Refused(r)) = check("busybox", GuestType::Pv, &hosts) else {
            panic!("not refused");
        };
        assert_eq!(r.refused.len(), 1);
        assert_eq!(
            r.to_string(),
            "preflight: host root@10.99.0.12 (Xen 4.17.7) cannot live-migrate PV guest busybox: \
             its hypervisor has no shadow paging (xl info virt_caps: pv hvm hap gnttab-v1 gnttab-v2), \
             which PV migration needs for log-dirty tracking. What works there: a PVH guest \
             ([xen] type = \"pvh\" in the recipe; it migrates with HAP log-dirty tracking), or a \
             hypervisor built with CONFIG_SHADOW_PAGING=y (Debian 12's 4.17.5+72-g01140da4e8-1 is; \
             its 4.17.7+13 security build is not)."
        );
        // The refusal carries every host's capabilities for the JSON verdict.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["guest_type"], "pv");
        assert_eq!(v["hosts"][0]["xen_version"], "4.17.5");
        assert_eq!(v["hosts"][1]["virt_caps"][2], "hap");
        assert_eq!(v["refused"][0]["host"], "root@10.99.0.12");
        // PVH migrates there with HAP.
        assert_eq!(
            check("busybox", GuestType::Pvh, &hosts).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn without_hvm_pvh_is_no_way_out() {
        let hosts = [host("localhost", DEBIAN_4_17_7)];
        let e = check("busybox", GuestType::Pv, &hosts)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "preflight: host localhost (Xen 4.17.7) cannot live-migrate PV guest busybox"
            ),
            "{e}"
        );
        assert!(
            e.contains("What works there: a hypervisor built with CONFIG_SHADOW_PAGING=y"),
            "{e}"
        );
        assert!(
            e.contains("a PVH guest would need hvm and hap, which it lacks too"),
            "{e}"
        );
        let e = check("busybox", GuestType::Pvh, &[host("h", DEBIAN_4_17_5)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot run PVH guest busybox: its hypervisor offers no HVM"),
            "{e}"
        );
        assert!(e.contains("What works there: a PV guest"), "{e}");
    }

    #[test]
    fn every_refused_host_is_named() {
        let hosts = [
            host("root@a", DEBIAN_4_17_7),
            host("root@b", DEBIAN_4_17_7_SVM),
        ];
        let e = check("g", GuestType::Pv, &hosts).unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(lines[0].starts_with("preflight: host root@a "), "{e}");
        assert!(lines[1].starts_with("preflight: host root@b "), "{e}");
    }

    #[test]
    fn an_old_xl_is_not_refused_but_noted() {
        let old = "xen_version            : 4.11.4\nvirt_caps              : hvm hvm_directio\n";
        let hosts = [
            host("root@old", old),
            host("root@none", "xen_version : 4.17.7\n"),
        ];
        let notes = check("g", GuestType::Pv, &hosts).unwrap();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("preflight: host root@old (Xen 4.11.4): cannot check that it can live-migrate a PV guest: its xl info's virt_caps (hvm hvm_directio) comes from an xl that does not name shadow paging"), "{}", notes[0]);
        assert!(
            notes[1].contains("its xl info has no virt_caps line"),
            "{}",
            notes[1]
        );
    }

    #[test]
    fn hvm_configs_are_refused() {
        let cfg = XlCfg {
            path: "/out/g/g.cfg".into(),
            name: "g".into(),
            kernel: "/k".into(),
            ramdisk: None,
            disks: vec![],
            guest_type: GuestType::Hvm,
        };
        let e = guest_type(&cfg).unwrap_err().to_string();
        assert_eq!(
            e,
            "preflight: guest g is an HVM domain (/out/g/g.cfg: type = \"hvm\"); imgbuild writes PV and PVH guests, and the check runs only those"
        );
        assert!(matches!(
            judge("h", &HostCaps::parse(DEBIAN_4_17_7_SVM), GuestType::Hvm),
            Verdict::Unchecked(_)
        ));
        let pvh = XlCfg {
            guest_type: GuestType::Pvh,
            ..cfg
        };
        assert_eq!(guest_type(&pvh).unwrap(), GuestType::Pvh);
    }
}

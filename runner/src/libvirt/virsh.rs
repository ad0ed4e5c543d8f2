//! The `virsh` command lines the libvirt backend runs (argv, never shell
//! strings; `docs/imgrun.md` lists them for ops to follow by hand) and the
//! parsers of what virsh prints.

use crate::report::MigrationStats;

fn virsh(uri: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["virsh", "-q", "-c", uri]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    v.extend(args.iter().map(|s| (*s).to_string()));
    v
}

/// `virsh -c URI version --daemon`: library, daemon and hypervisor versions.
pub fn version(uri: &str) -> Vec<String> {
    virsh(uri, &["version", "--daemon"])
}

/// `virsh -c URI hostname`: the host as its daemon names itself.
pub fn hostname(uri: &str) -> Vec<String> {
    virsh(uri, &["hostname"])
}

/// `virsh -c URI domcapabilities --virttype kvm`: fails where the host has no KVM.
pub fn kvm_capabilities(uri: &str) -> Vec<String> {
    virsh(uri, &["domcapabilities", "--virttype", "kvm"])
}

/// `virsh -c URI define FILE`: a persistent domain from the XML.
pub fn define(uri: &str, file: &str) -> Vec<String> {
    virsh(uri, &["define", file])
}

/// `virsh -c URI start NAME`.
pub fn start(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["start", name])
}

/// `virsh -c URI domid NAME`.
pub fn domid(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["domid", name])
}

/// `virsh -c URI domstate NAME` (fails when there is no such domain).
pub fn domstate(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["domstate", name])
}

/// `virsh -c SRC migrate --live --persistent --undefinesource [--p2p] NAME DST`:
/// the domain leaves SRC's definitions and stays defined on DST.
pub fn migrate(src: &str, name: &str, dst: &str, p2p: bool) -> Vec<String> {
    let mut args = vec!["migrate", "--live", "--persistent", "--undefinesource"];
    if p2p {
        args.push("--p2p");
    }
    args.extend([name, dst]);
    virsh(src, &args)
}

/// `virsh -c URI domjobabort NAME`: cancels a running migration.
pub fn domjobabort(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["domjobabort", name])
}

/// `virsh -c URI domjobinfo --completed --rawstats NAME`: the figures of
/// the domain's last completed job (the migration), as typed parameters.
pub fn domjobinfo_completed(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["domjobinfo", "--completed", "--rawstats", name])
}

/// `virsh -c URI destroy NAME`.
pub fn destroy(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["destroy", name])
}

/// `virsh -c URI undefine NAME`.
pub fn undefine(uri: &str, name: &str) -> Vec<String> {
    virsh(uri, &["undefine", name])
}

/// A domain's state as `virsh domstate` says it (`running`, `paused`,
/// `shut off`, …; the reason, if printed, dropped).
pub fn parse_state(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.split(" (").next().unwrap_or(l).to_string())
        .unwrap_or_default()
}

/// A state in which the guest runs: `running`, or `idle` (blocked: a Xen
/// domain waiting for an event), or `paused` (the instant a migration
/// stops it; not for the checks, which ask the guest itself).
pub fn is_live(state: &str) -> bool {
    matches!(state, "running" | "idle" | "paused")
}

/// `virsh version`'s daemon and hypervisor: `libvirt 11.3.0, QEMU 10.0.2`.
pub fn parse_version(out: &str) -> String {
    let mut daemon = None;
    let mut hv = None;
    for l in out.lines() {
        if let Some(v) = l.strip_prefix("Running against daemon:") {
            daemon = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("Running hypervisor:") {
            hv = Some(v.trim().to_string());
        }
    }
    match (daemon, hv) {
        (Some(d), Some(h)) => format!("libvirt {d}, {h}"),
        (Some(d), None) => format!("libvirt {d}"),
        (None, Some(h)) => h,
        (None, None) => "libvirt (version unknown)".into(),
    }
}

/// The migration figures in `virsh domjobinfo --completed --rawstats`:
/// typed parameters as `name: value` lines (times in ms, sizes in bytes).
/// None if virsh printed no completed job.
pub fn parse_jobinfo(out: &str) -> Option<MigrationStats> {
    let mut raw = std::collections::BTreeMap::new();
    for l in out.lines() {
        let Some((k, v)) = l.split_once(':').or_else(|| l.split_once('=')) else {
            continue;
        };
        let k = k.trim();
        if k.contains(' ') || k.is_empty() {
            continue;
        }
        if let Ok(n) = v.trim().parse::<u64>() {
            raw.insert(k.to_string(), n);
        }
    }
    let get = |k: &str| raw.get(k).copied();
    let transferred = get("data_processed").or_else(|| get("memory_processed"));
    if get("time_elapsed").is_none() && get("downtime").is_none() && transferred.is_none() {
        return None;
    }
    Some(MigrationStats {
        status: "completed".into(),
        total_time_ms: get("time_elapsed"),
        downtime_ms: get("downtime"),
        setup_time_ms: get("setup_time"),
        transferred_bytes: transferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_has_the_uri_after_dash_c_and_nothing_joined() {
        assert_eq!(
            migrate(
                "xen+ssh://h1/system",
                "busybox",
                "xen+ssh://h2/system",
                false
            ),
            [
                "virsh",
                "-q",
                "-c",
                "xen+ssh://h1/system",
                "migrate",
                "--live",
                "--persistent",
                "--undefinesource",
                "busybox",
                "xen+ssh://h2/system"
            ]
        );
        assert!(migrate("a", "n", "b", true).contains(&"--p2p".to_string()));
        assert_eq!(
            define("qemu:///system", "/o/b.qemu.xml")[4..],
            ["define", "/o/b.qemu.xml"]
        );
        assert_eq!(
            domjobinfo_completed("u", "n")[4..],
            ["domjobinfo", "--completed", "--rawstats", "n"]
        );
    }

    #[test]
    fn states() {
        assert_eq!(parse_state("running\n\n"), "running");
        assert_eq!(parse_state("shut off (destroyed)\n"), "shut off");
        assert_eq!(parse_state(""), "");
    }

    #[test]
    fn versions() {
        let out = "Compiled against library: libvirt 11.3.0\nUsing library: libvirt 11.3.0\nUsing API: QEMU 11.3.0\nRunning hypervisor: QEMU 10.0.2\nRunning against daemon: 11.3.0\n";
        assert_eq!(parse_version(out), "libvirt 11.3.0, QEMU 10.0.2");
        assert_eq!(
            parse_version("Running against daemon: 9.0.0\n"),
            "libvirt 9.0.0"
        );
    }

    #[test]
    fn job_figures() {
        let out = "Job type:         Completed\nOperation:        Outgoing migration\n\ntime_elapsed: 2310\ntime_elapsed_net: 2309\ndowntime: 41\ndowntime_net: 40\nsetup_time: 12\ndata_total: 546775040\ndata_processed: 123456789\ndata_remaining: 0\nmemory_processed: 120000000\n";
        let s = parse_jobinfo(out).unwrap();
        assert_eq!(s.total_time_ms, Some(2310));
        assert_eq!(s.downtime_ms, Some(41));
        assert_eq!(s.setup_time_ms, Some(12));
        assert_eq!(s.transferred_bytes, Some(123_456_789));
        assert_eq!(parse_jobinfo("Job type:         None\n"), None);
    }
}

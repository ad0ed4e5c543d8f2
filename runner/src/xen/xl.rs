//! `xl` command lines (argv, never shell strings) and the parser of `xl
//! list` (`xl info` is [`super::caps`]'s).

/// `xl info`.
pub fn info() -> Vec<String> {
    argv(&["xl", "info"])
}

/// `xl create CFG`.
pub fn create(cfg: &str) -> Vec<String> {
    argv(&["xl", "create", cfg])
}

/// `xl list NAME`.
pub fn list(name: &str) -> Vec<String> {
    argv(&["xl", "list", name])
}

/// `xl console NAME`: the domain's console on the terminal (Ctrl-] leaves).
pub fn console(name: &str) -> Vec<String> {
    argv(&["xl", "console", name])
}

/// `xl destroy NAME`.
pub fn destroy(name: &str) -> Vec<String> {
    argv(&["xl", "destroy", name])
}

/// Single-host migration, Xen's own localhost test: the "host" is the
/// receiving command itself and the ssh command is empty.
pub fn migrate_local(name: &str) -> Vec<String> {
    argv(&["xl", "migrate", "-s", "", name, "xl migrate-receive"])
}

/// `xl migrate NAME DEST` (xl runs `ssh DEST xl migrate-receive`).
pub fn migrate_to(name: &str, dest: &str) -> Vec<String> {
    argv(&["xl", "migrate", name, dest])
}

/// The tail of a domain's console log as xenconsoled writes it
/// (`--log=guest`; after an incoming migration the name has `--incoming`).
pub fn console_tail(name: &str, incoming: bool, lines: u32) -> Vec<String> {
    let file = console_log(name, incoming);
    vec!["tail".into(), "-n".into(), lines.to_string(), file]
}

/// The console log path of domain `name` in dom0.
pub fn console_log(name: &str, incoming: bool) -> String {
    format!(
        "/var/log/xen/console/guest-{name}{}.log",
        if incoming { "--incoming" } else { "" }
    )
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}

/// One row of `xl list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub id: u32,
    pub state: String,
}

impl Domain {
    /// Running, blocked (idle) or runnable (`------`: waiting for a CPU,
    /// common on a host with one), not paused, shut down, crashed or dying.
    pub fn is_live(&self) -> bool {
        let s = self.state.as_bytes();
        let flag = |c: u8| s.contains(&c);
        !flag(b'p') && !flag(b's') && !flag(b'c') && !flag(b'd')
    }
}

/// Parses `xl list` output (header, then `Name ID Mem VCPUs State Time`).
pub fn parse_list(out: &str) -> Vec<Domain> {
    out.lines()
        .skip_while(|l| !l.starts_with("Name"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 {
                return None;
            }
            let n = f.len();
            Some(Domain {
                name: f[..n - 5].join(" "),
                id: f[n - 5].parse().ok()?,
                state: f[n - 2].to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
Domain-0                                     0  1024     1     r-----     292.6\n\
smoke                                        7   128     1     -b----       0.4\n\
busybox--incoming                            8   512     1     --p---       0.0\n";

    #[test]
    fn list_rows_and_states() {
        let d = parse_list(LIST);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[1],
            Domain {
                name: "smoke".into(),
                id: 7,
                state: "-b----".into()
            }
        );
        assert!(d[0].is_live() && d[1].is_live());
        assert!(!d[2].is_live());
        let state = |s: &str| Domain {
            name: "g".into(),
            id: 1,
            state: s.into(),
        };
        // Runnable but not on a CPU at this moment: no flag at all.
        assert!(state("------").is_live());
        for dead in ["---s--", "----c-", "-----d", "--p---", "-b-s--"] {
            assert!(!state(dead).is_live(), "{dead}");
        }
        assert_eq!(d[2].name, "busybox--incoming");
    }

    #[test]
    fn argvs() {
        assert_eq!(info(), ["xl", "info"]);
        assert_eq!(
            migrate_local("busybox"),
            ["xl", "migrate", "-s", "", "busybox", "xl migrate-receive"]
        );
        assert_eq!(
            migrate_to("busybox", "root@h2"),
            ["xl", "migrate", "busybox", "root@h2"]
        );
        assert_eq!(
            console_log("busybox", true),
            "/var/log/xen/console/guest-busybox--incoming.log"
        );
    }
}

//! What the guest says about the workload ([`super::script::query`]'s
//! lines), read.

/// The fields of `/proc/PID/stat` the checks use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `T`, `Z` (a zombie: it exited), …
    pub state: char,
    /// When the process started, in clock ticks after boot (field 22): a
    /// process that has the workload's PID but another start time is
    /// another process.
    pub start_time: u64,
}

impl ProcStat {
    /// Reads a `/proc/PID/stat` line. The command name (field 2) is in
    /// parentheses and may hold spaces and parentheses itself: the fields
    /// are counted from the last `)`.
    pub fn parse(line: &str) -> Option<ProcStat> {
        let rest = &line[line.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let state = f.first()?.chars().next()?;
        // Field 3 is the state, field 22 the start time.
        let start_time = f.get(22 - 3)?.parse().ok()?;
        Some(ProcStat { state, start_time })
    }

    /// Not a zombie (or dead).
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The workload as the guest reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The PID its start recorded; `None`: no record (the guest's `/run`
    /// is not the one the workload started in).
    pub pid: Option<u32>,
    /// Its process, while it exists.
    pub stat: Option<ProcStat>,
    /// Its exit status, once it exited.
    pub status: Option<i32>,
}

impl Observed {
    /// Reads the `pid …`, `stat …` and `status …` lines; other lines (a
    /// shell's job notice, a kernel message) are skipped.
    pub fn parse(text: &str) -> Observed {
        let mut o = Observed::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(p) = line.strip_prefix("pid ") {
                o.pid = p.trim().parse().ok();
            } else if let Some(s) = line.strip_prefix("stat ") {
                o.stat = ProcStat::parse(s);
            } else if let Some(s) = line.strip_prefix("status ") {
                o.status = s.trim().parse().ok();
            }
        }
        o
    }

    /// Its process exists and has not exited.
    pub fn is_running(&self) -> bool {
        self.stat.as_ref().is_some_and(ProcStat::is_alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "84 (sh) S 1 84 84 1088 97 4194560 236 1310 0 0 0 1 2 3 20 0 1 0 291 1765376 140 18446744073709551615 1 1 0 0 0 0 0 3686404 134294019 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn stat_lines() {
        assert_eq!(
            ProcStat::parse(STAT),
            Some(ProcStat {
                state: 'S',
                start_time: 291
            })
        );
        // A command name with spaces and a parenthesis.
        let odd = STAT.replace("(sh)", "(my (odd) prog)");
        assert_eq!(ProcStat::parse(&odd).map(|s| s.start_time), Some(291));
        let zombie = STAT.replace(") S ", ") Z ");
        assert!(!ProcStat::parse(&zombie).unwrap().is_alive());
        assert_eq!(ProcStat::parse("84 (sh) S 1 2"), None);
        assert_eq!(ProcStat::parse(""), None);
        // This process's own line reads too.
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(ProcStat::parse(&me).unwrap().is_alive());
    }

    #[test]
    fn what_the_guest_said() {
        let o = Observed::parse(&format!(
            "[1] 123\r\npid 84\r\nstat {STAT}\r\n[  5.1] kernel: hi\nstatus 0\n"
        ));
        assert_eq!(o.pid, Some(84));
        assert_eq!(o.status, Some(0));
        assert!(o.is_running());
        let none = Observed::parse("pid none\n");
        assert_eq!(none, Observed::default());
        assert!(!none.is_running());
    }
}

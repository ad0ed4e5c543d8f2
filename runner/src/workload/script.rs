//! The shell code typed into the guest for `--workload`: start it in the
//! background, ask about it, read its output. Its files are in a directory
//! of the guest's `/run` (tmpfs, so in the guest's memory: they migrate
//! with it):
//!
//! - `workload.pid`: the PID of the process that runs the workload (a
//!   `sh -c` that writes its own PID and then execs the workload's shell,
//!   so that a workload of one command is that command's process);
//! - `workload.out`: its stdout and stderr;
//! - `workload.status`: its exit status, once it exited.

use crate::console::line::quote;

/// Where the workload's files are in the guest.
pub const DIR: &str = "/run/imgrun";

/// Starts `code` (shell code) in the background in `dir`, waits up to 5 s
/// for its PID, then prints what [`query`] prints. The background job
/// holds no terminal (or pipe) of the shell that started it.
pub fn start(dir: &str, code: &str) -> String {
    let runner = format!(
        "echo $$ >{dir}/workload.pid.new && mv -f {dir}/workload.pid.new {dir}/workload.pid && exec sh -c \"$1\""
    );
    format!(
        "mkdir -p {dir}; rm -f {dir}/workload.pid {dir}/workload.status {dir}/workload.out; \
         {{ sh -c {} imgrun-workload {} </dev/null >{dir}/workload.out 2>&1; \
         echo $? >{dir}/workload.status.new; mv -f {dir}/workload.status.new {dir}/workload.status; }} \
         </dev/null >/dev/null 2>&1 & \
         i=0; while [ ! -s {dir}/workload.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; {}",
        quote(&runner),
        quote(code),
        query(dir)
    )
}

/// Prints `pid N` (or `pid none`), `stat …` (the process's
/// `/proc/N/stat`, while it exists) and `status S` (once it exited).
pub fn query(dir: &str) -> String {
    format!(
        "p=$(cat {dir}/workload.pid 2>/dev/null); echo \"pid ${{p:-none}}\"; \
         if [ -n \"$p\" ] && [ -r /proc/$p/stat ]; then echo \"stat $(cat /proc/$p/stat 2>/dev/null)\"; fi; \
         if [ -r {dir}/workload.status ]; then echo \"status $(cat {dir}/workload.status)\"; fi"
    )
}

/// Prints `size N` (the bytes of output so far), then the last `max` of them.
pub fn output(dir: &str, max: usize) -> String {
    format!(
        "echo \"size $(wc -c <{dir}/workload.out 2>/dev/null)\"; tail -c {max} {dir}/workload.out 2>/dev/null"
    )
}

/// `size N`, then the output: the size and the output.
pub fn parse_output(text: &[u8]) -> (Option<u64>, Vec<u8>) {
    let (first, rest) = match text.iter().position(|&b| b == b'\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &[][..]),
    };
    let size = std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix("size "))
        .and_then(|n| n.trim().parse().ok());
    (size, rest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::state::Observed;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn sh(script: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The scripts run by this machine's shell in a directory of their
    /// own: the workload starts, its PID is its own process's (a workload
    /// of one command is that command), it runs, exits, and its status and
    /// output are there.
    #[test]
    fn start_query_and_output_on_this_machines_shell() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        let started = Observed::parse(&sh(&start(dir, "echo \"it's\" here; exec sleep 1")));
        let pid = started.pid.expect("a pid");
        let stat = started.stat.clone().expect("a running process");
        assert!(started.status.is_none(), "{started:?}");
        assert!(started.is_running(), "{started:?}");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(comm.trim() == "sleep" || comm.trim() == "sh", "{comm}");
        let now = Observed::parse(&sh(&query(dir)));
        assert_eq!(now.pid, Some(pid));
        assert_eq!(now.stat.map(|s| s.start_time), Some(stat.start_time));
        let end = Instant::now() + Duration::from_secs(10);
        let done = loop {
            let o = Observed::parse(&sh(&query(dir)));
            if o.status.is_some() || Instant::now() > end {
                break o;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(done.status, Some(0), "{done:?}");
        assert!(!done.is_running());
        let (size, text) = parse_output(sh(&output(dir, 6)).as_bytes());
        assert_eq!((size, text.as_slice()), (Some(10), &b" here\n"[..]));
    }

    #[test]
    fn a_failing_workload_leaves_its_status() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        sh(&start(dir, "exit 3"));
        let end = Instant::now() + Duration::from_secs(5);
        while !d.path().join("workload.status").exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(Observed::parse(&sh(&query(dir))).status, Some(3));
        assert_eq!(parse_output(b"size 0\n"), (Some(0), vec![]));
        assert_eq!(parse_output(b"size \n"), (None, vec![]));
    }
}

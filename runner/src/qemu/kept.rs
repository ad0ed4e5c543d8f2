//! `imgrun run --keep` under QEMU: what imgrun says about the guest it
//! leaves running — how to reach it and how to stop it.

use std::net::Ipv4Addr;
use std::path::Path;

/// A guest left running.
#[derive(Debug, Clone)]
pub struct Kept<'a> {
    pub guest: &'a str,
    pub pid: u32,
    pub log_dir: &'a Path,
    /// The run made the log directory (so stopping removes it).
    pub made_log_dir: bool,
    pub console_socket: Option<&'a Path>,
    pub console_log: &'a Path,
    pub qmp: &'a Path,
    /// Its namespace and the guest's address there.
    pub network: Option<(&'a str, Ipv4Addr)>,
}

/// One line each: the guest, its console, console log, QMP, network, and
/// the commands that stop it and remove what the run left.
pub fn lines(k: &Kept<'_>) -> Vec<String> {
    let mut v = vec![format!(
        "the guest {} keeps running: QEMU pid {}, files in {}",
        k.guest,
        k.pid,
        k.log_dir.display()
    )];
    if let Some(sock) = k.console_socket {
        v.push(format!(
            "console (its shell; Ctrl-] leaves): socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:{}",
            sock.display()
        ));
    }
    v.push(format!("console log: {}", k.console_log.display()));
    v.push(format!("QMP: {}", k.qmp.display()));
    let mut stop = format!("kill {}", k.pid);
    if let Some((ns, addr)) = k.network {
        v.push(format!(
            "network: the guest is {addr} in namespace {ns} (e.g. ip netns exec {ns} ping {addr})"
        ));
        stop.push_str(&format!("; ip netns del {ns}"));
    }
    if k.made_log_dir {
        stop.push_str(&format!("; rm -r {}", k.log_dir.display()));
    }
    v.push(format!("stop it: {stop}"));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_to_reach_and_stop_it() {
        let mut k = Kept {
            guest: "busybox",
            pid: 4242,
            log_dir: Path::new("/tmp/imgrun-1-2"),
            made_log_dir: true,
            console_socket: Some(Path::new("/tmp/imgrun-1-2/qemu-a-1.console.sock")),
            console_log: Path::new("/tmp/imgrun-1-2/qemu-a-1.console.log"),
            qmp: Path::new("/tmp/imgrun-1-2/qemu-a.qmp"),
            network: Some(("imgrun-kept-1-0", Ipv4Addr::new(10, 99, 0, 2))),
        };
        assert_eq!(
            lines(&k),
            [
                "the guest busybox keeps running: QEMU pid 4242, files in /tmp/imgrun-1-2",
                "console (its shell; Ctrl-] leaves): socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:/tmp/imgrun-1-2/qemu-a-1.console.sock",
                "console log: /tmp/imgrun-1-2/qemu-a-1.console.log",
                "QMP: /tmp/imgrun-1-2/qemu-a.qmp",
                "network: the guest is 10.99.0.2 in namespace imgrun-kept-1-0 (e.g. ip netns exec imgrun-kept-1-0 ping 10.99.0.2)",
                "stop it: kill 4242; ip netns del imgrun-kept-1-0; rm -r /tmp/imgrun-1-2",
            ]
        );
        // No network, a log directory of the user's own: not removed.
        k.network = None;
        k.made_log_dir = false;
        assert_eq!(lines(&k).last().unwrap(), "stop it: kill 4242");
    }
}

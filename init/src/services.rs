//! Supervision of the console shell and the configured services: start,
//! notice exits, respawn with back-off; and the PID 1 loop around it
//! ([`Supervisor::round`]).

use crate::sys::{Exited, Spawn, Sys};
use crate::{reap, signals};
use guest_contract::init_config::Restart;
use std::time::Duration;

/// A process that ran at least this long resets its back-off.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Longest respawn delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest and longest wait for a signal in one [`Supervisor::round`].
pub const WAIT_MIN: Duration = Duration::from_millis(10);
/// See [`WAIT_MIN`].
pub const WAIT_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits for processes after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// One supervised process.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// Name for the log.
    pub name: String,
    /// How to start it.
    pub spawn: Spawn,
    /// Once or respawn.
    pub restart: Restart,
    /// Its PID while it runs.
    pub pid: Option<u32>,
    /// When it was last started.
    pub started_at: Duration,
    /// Quick exits in a row.
    pub quick_exits: u32,
    /// When to start it next (respawn only).
    pub next_start: Option<Duration>,
}

/// The delay before respawn after `quick_exits` quick exits in a row:
/// 0 for the first, then 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF`].
pub fn backoff(quick_exits: u32) -> Duration {
    match quick_exits {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(5)).min(MAX_BACKOFF),
    }
}

/// All supervised processes.
#[derive(Debug, Default)]
pub struct Supervisor {
    /// The processes, in start order.
    pub procs: Vec<Supervised>,
}

impl Supervisor {
    /// Adds a process (not started yet).
    pub fn add(&mut self, name: &str, spawn: Spawn, restart: Restart) {
        self.procs.push(Supervised {
            name: name.to_owned(),
            spawn,
            restart,
            pid: None,
            started_at: Duration::ZERO,
            quick_exits: 0,
            next_start: Some(Duration::ZERO),
        });
    }

    fn start<S: Sys>(sys: &mut S, p: &mut Supervised) {
        p.next_start = None;
        p.started_at = sys.uptime();
        match sys.spawn(&p.spawn) {
            Ok(pid) => {
                sys.log(&format!("started {} (pid {pid})", p.name));
                p.pid = Some(pid);
            }
            Err(e) => {
                sys.log(&format!("starting {} failed: {e}", p.name));
                Self::schedule(sys, p);
            }
        }
    }

    fn schedule<S: Sys>(sys: &mut S, p: &mut Supervised) {
        if p.restart != Restart::Respawn {
            return;
        }
        let now = sys.uptime();
        if now.saturating_sub(p.started_at) >= STABLE_AFTER {
            p.quick_exits = 0;
        }
        p.quick_exits = p.quick_exits.saturating_add(1);
        let delay = backoff(p.quick_exits);
        if !delay.is_zero() {
            sys.log(&format!("respawning {} in {} s", p.name, delay.as_secs()));
        }
        p.next_start = Some(now + delay);
    }

    /// Starts everything that is due.
    pub fn tick<S: Sys>(&mut self, sys: &mut S) {
        let now = sys.uptime();
        for p in &mut self.procs {
            if p.pid.is_none() && p.next_start.is_some_and(|t| t <= now) {
                Self::start(sys, p);
            }
        }
    }

    /// Handles an exited child (which may be no supervised process at all).
    pub fn exited<S: Sys>(&mut self, sys: &mut S, e: Exited) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.pid == Some(e.pid)) {
            p.pid = None;
            sys.log(&format!(
                "{} (pid {}) exited with status {}",
                p.name, e.pid, e.code
            ));
            Self::schedule(sys, p);
        }
    }

    /// One round of the PID 1 loop: start what is due, wait for a signal
    /// until the next start is due (between [`WAIT_MIN`] and [`WAIT_MAX`]),
    /// shut down on a shutdown signal (staying up if `reboot(2)` fails),
    /// reap every child.
    pub fn round<S: Sys>(&mut self, sys: &mut S) {
        self.tick(sys);
        let timeout = self
            .next_due(sys.uptime())
            .unwrap_or(WAIT_MAX)
            .clamp(WAIT_MIN, WAIT_MAX);
        if let Some(sig) = sys.wait_signal(timeout) {
            if let Some(action) = signals::action_for(sig) {
                let e = signals::shutdown(sys, action, SHUTDOWN_GRACE);
                sys.log(&format!("reboot(2) failed: {e}; staying up"));
            }
        }
        for e in reap::reap_all(sys) {
            self.exited(sys, e);
        }
    }

    /// Time until the next scheduled start, if any.
    pub fn next_due(&self, now: Duration) -> Option<Duration> {
        self.procs
            .iter()
            .filter(|p| p.pid.is_none())
            .filter_map(|p| p.next_start)
            .map(|t| t.saturating_sub(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Tty;
    use crate::sys::fake::FakeSys;

    fn spawn(cmd: &str) -> Spawn {
        Spawn {
            argv: vec![cmd.into()],
            tty: Tty::Detached,
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let d: Vec<u64> = (0..10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(d, [0, 0, 1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn once_runs_once_respawn_respawns_with_backoff() {
        let mut sys = FakeSys::new();
        let mut sv = Supervisor::default();
        sv.add("once", spawn("/bin/once"), Restart::Once);
        sv.add("daemon", spawn("/bin/daemon"), Restart::Respawn);
        sv.tick(&mut sys);
        assert_eq!(
            sys.calls,
            ["spawn detached /bin/once", "spawn detached /bin/daemon"]
        );
        let (p_once, p_daemon) = (sv.procs[0].pid.unwrap(), sv.procs[1].pid.unwrap());
        sv.exited(
            &mut sys,
            Exited {
                pid: p_once,
                code: 0,
            },
        );
        sv.exited(&mut sys, Exited { pid: 4242, code: 0 }); // an orphan: ignored
        sv.exited(
            &mut sys,
            Exited {
                pid: p_daemon,
                code: 1,
            },
        );
        sv.tick(&mut sys); // first quick exit: immediately
        assert_eq!(sys.calls_starting("spawn").len(), 3);
        let p = sv.procs[1].pid.unwrap();
        sv.exited(&mut sys, Exited { pid: p, code: 1 });
        sv.tick(&mut sys); // second quick exit: 1 s later
        assert_eq!(sys.calls_starting("spawn").len(), 3);
        assert_eq!(sv.next_due(sys.now), Some(Duration::from_secs(1)));
        sys.now += Duration::from_secs(1);
        sv.tick(&mut sys);
        assert_eq!(sys.calls_starting("spawn detached /bin/daemon").len(), 3);
        // running long enough resets the back-off
        sys.now += STABLE_AFTER;
        let p = sv.procs[1].pid.unwrap();
        sv.exited(&mut sys, Exited { pid: p, code: 0 });
        assert_eq!(sv.next_due(sys.now), Some(Duration::ZERO));
        assert!(sv.procs[0].pid.is_none() && sv.procs[0].next_start.is_none());
    }

    #[test]
    fn round_waits_until_next_start() {
        let mut sys = FakeSys::new();
        let mut sv = Supervisor::default();
        sv.round(&mut sys); // nothing to do: the longest wait
        assert_eq!(sys.now, WAIT_MAX);
        sv.add("daemon", spawn("/bin/daemon"), Restart::Respawn);
        sv.round(&mut sys);
        assert_eq!(sys.calls, ["spawn detached /bin/daemon"]);
        assert_eq!(sys.now, 2 * WAIT_MAX);
        // it exits while we wait; reaped in the same round, due at once
        let pid = sv.procs[0].pid.unwrap();
        sys.exits.push_back(Exited { pid, code: 1 });
        sv.round(&mut sys);
        assert_eq!(sys.now, 3 * WAIT_MAX);
        assert_eq!(sv.next_due(sys.now), Some(Duration::ZERO));
        sv.round(&mut sys); // started again
        assert_eq!(sys.calls_starting("spawn").len(), 2);
        assert_eq!(sys.now, 4 * WAIT_MAX);
        // it exits at once: SIGCHLD (which asks for nothing else) ends the
        // wait early, and the second quick exit means a respawn in 1 s
        let pid = sv.procs[0].pid.unwrap();
        sys.exits.push_back(Exited { pid, code: 1 });
        sys.signals.push_back(libc::SIGCHLD);
        sv.round(&mut sys);
        assert_eq!(sys.now, 4 * WAIT_MAX);
        assert_eq!(sv.next_due(sys.now), Some(Duration::from_secs(1)));
        sv.round(&mut sys); // waits just that long
        assert_eq!(sys.now, 4 * WAIT_MAX + Duration::from_secs(1));
        assert_eq!(sys.calls_starting("spawn").len(), 2);
        sv.round(&mut sys);
        assert_eq!(sys.calls_starting("spawn").len(), 3);
        assert!(sys.calls_starting("kill_all").is_empty());
    }

    #[test]
    fn round_waits_at_least_wait_min() {
        let mut sys = FakeSys::new();
        sys.fail.insert("spawn".into());
        let mut sv = Supervisor::default();
        sv.add("sh", spawn("/bin/sh"), Restart::Respawn);
        sv.round(&mut sys); // failed, due again at once: no busy loop
        assert_eq!(sys.now, WAIT_MIN);
    }

    #[test]
    fn round_shuts_down_on_signal_and_stays_up_if_reboot_fails() {
        let mut sys = FakeSys::new();
        sys.add_file("/proc/mounts", b"/dev/vda / ext4 rw 0 0\n");
        let mut sv = Supervisor::default();
        sv.add("sh", spawn("/bin/sh"), Restart::Respawn);
        sys.signals.push_back(libc::SIGUSR2);
        sv.round(&mut sys);
        assert_eq!(
            sys.calls,
            [
                "spawn detached /bin/sh",
                "kill_all 15",
                "kill_all 9",
                "sync",
                "remount_ro /",
                "sync",
                "power PowerOff",
            ]
        );
        assert_eq!(
            sys.logs.last().unwrap(),
            "reboot(2) failed: fake power; staying up"
        );
        // the killed shell is reaped and respawned: PID 1 goes on
        let pid = sv.procs[0].pid.unwrap();
        sys.exits.push_back(Exited { pid, code: 137 });
        sv.round(&mut sys);
        sv.round(&mut sys);
        assert_eq!(sys.calls_starting("spawn").len(), 2);
    }

    #[test]
    fn failed_spawn_is_retried() {
        let mut sys = FakeSys::new();
        sys.fail.insert("spawn".into());
        let mut sv = Supervisor::default();
        sv.add("sh", spawn("/bin/sh"), Restart::Respawn);
        sv.tick(&mut sys);
        sv.tick(&mut sys);
        sys.now += Duration::from_secs(1);
        sv.tick(&mut sys);
        assert_eq!(sys.calls.len(), 3);
        assert!(sv.next_due(sys.now).unwrap() > Duration::ZERO);
    }
}

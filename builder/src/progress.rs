//! Progress bars (indicatif) on stderr, hidden when stderr is not a terminal.

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sources::FetchEvent;

/// Build progress: one spinner per step, one bar per download.
#[derive(Debug)]
pub struct Progress {
    multi: MultiProgress,
    step: Option<ProgressBar>,
    download: Option<ProgressBar>,
    /// The current step's byte bar (image writing).
    bytes: Option<ProgressBar>,
    /// With `IMGBUILD_TIMINGS` set: the current step's name and start.
    timing: Option<(String, Instant)>,
    timings: bool,
}

impl Progress {
    /// Drawn on stderr when it is a terminal and `enabled`; hidden otherwise.
    pub fn new(enabled: bool) -> Progress {
        let target = if enabled && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            step: None,
            download: None,
            bytes: None,
            timing: None,
            timings: std::env::var_os("IMGBUILD_TIMINGS").is_some(),
        }
    }

    /// Also prints how long each step took (as `IMGBUILD_TIMINGS` does).
    pub fn with_timings(mut self, on: bool) -> Progress {
        self.timings |= on;
        self
    }

    /// A progress sink that never draws.
    pub fn hidden() -> Progress {
        Progress::new(false)
    }

    /// Starts a step, finishing the previous one.
    pub fn step(&mut self, msg: &str) {
        self.finish_step();
        if self.timings {
            self.timing = Some((msg.to_owned(), Instant::now()));
        }
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("{spinner:.green} {msg} {elapsed:.dim}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb.set_message(msg.to_owned());
        self.step = Some(pb);
    }

    /// Finishes the current step (leaves it on screen with a check mark).
    pub fn finish_step(&mut self) {
        if let Some((name, start)) = self.timing.take() {
            // Not eprintln!: a closed stderr is no reason to panic.
            let _ = writeln!(
                std::io::stderr(),
                "imgbuild: {name}: {:.1} ms",
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
        if let Some(pb) = self.step.take() {
            pb.set_style(
                ProgressStyle::with_template("✔ {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.finish();
        }
    }

    /// Shows the current step's progress in bytes (e.g. an image being
    /// written) as a bar under it; the bar goes away at `done == total`.
    pub fn bytes(&mut self, done: u64, total: u64) {
        let multi = &self.multi;
        let pb = self.bytes.get_or_insert_with(|| {
            let pb = multi.add(ProgressBar::new(total));
            pb.set_style(
                ProgressStyle::with_template("  [{bar:30.cyan/blue}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb
        });
        pb.set_length(total);
        pb.set_position(done);
        if done >= total {
            if let Some(pb) = self.bytes.take() {
                pb.finish_and_clear();
            }
        }
    }

    /// Shows a package download.
    pub fn fetch_event(&mut self, ev: &FetchEvent) {
        match ev {
            FetchEvent::Started { package, total } => {
                let pb = self.multi.add(match total {
                    Some(t) => ProgressBar::new(*t),
                    None => ProgressBar::new_spinner(),
                });
                pb.set_style(
                    ProgressStyle::with_template(
                        "  {msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                pb.set_message(format!("download {package}"));
                self.download = Some(pb);
            }
            FetchEvent::Progress {
                downloaded, total, ..
            } => {
                if let Some(pb) = &self.download {
                    if let Some(t) = total {
                        pb.set_length(*t);
                    }
                    pb.set_position(*downloaded);
                }
            }
            FetchEvent::Downloaded { .. } => {
                if let Some(pb) = self.download.take() {
                    pb.finish_and_clear();
                }
            }
            FetchEvent::Resolved { from, to } => {
                if let Some(pb) = &self.step {
                    pb.set_message(format!("{from} → {to}"));
                }
            }
            FetchEvent::Cached { .. } => {}
        }
    }

    /// Clears everything.
    pub fn done(mut self) {
        self.finish_step();
        let _ = self.multi.clear();
    }
}

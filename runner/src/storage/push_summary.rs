//! What a push tells: progress events and the summary (one line, or JSON).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Progress, for the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The destination is open.
    Opened {
        destination: String,
        size: u64,
        data: u64,
        holes: u64,
    },
    /// Bytes of the image done (zeroed or written), of `total`.
    Progress { done: u64, total: u64 },
}

impl fmt::Display for PushEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushEvent::Opened {
                destination,
                size,
                data,
                holes,
            } => write!(
                f,
                "{destination}: {}; the image has {} of data and {} of holes",
                human(*size),
                human(*data),
                human(*holes)
            ),
            PushEvent::Progress { done, total } => write!(
                f,
                "{} of {} ({}%)",
                human(*done),
                human(*total),
                done.saturating_mul(100) / (*total).max(1)
            ),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSummary {
    pub destination: String,
    pub image: PathBuf,
    /// The image's size, bytes.
    pub image_bytes: u64,
    /// Bytes of data written.
    pub data_bytes: u64,
    /// Bytes of holes zeroed (0 with `--assume-zeroed`).
    pub zeroed_bytes: u64,
    /// Holes in the image.
    pub hole_ranges: usize,
    /// How the holes were zeroed (or why not).
    pub zero_method: String,
    /// Bytes sent to the server (headers included; 0 for a local push).
    pub wire_bytes: u64,
    pub elapsed: Duration,
}

impl PushSummary {
    /// The one-line summary.
    pub fn line(&self) -> String {
        let holes = if self.zeroed_bytes > 0 || self.hole_ranges == 0 {
            format!(
                "zeroed {} in {} ranges ({})",
                human(self.zeroed_bytes),
                self.hole_ranges,
                self.zero_method
            )
        } else {
            format!(
                "left {} ranges as they were ({})",
                self.hole_ranges, self.zero_method
            )
        };
        let wire = if self.wire_bytes > 0 {
            format!(
                "; {} sent for a {} image",
                human(self.wire_bytes),
                human(self.image_bytes)
            )
        } else {
            String::new()
        };
        format!(
            "wrote {} of data and {holes} to {} in {:.1} s{wire}",
            human(self.data_bytes),
            self.destination,
            self.elapsed.as_secs_f64()
        )
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": true,
            "destination": self.destination,
            "image": self.image.display().to_string(),
            "image_bytes": self.image_bytes,
            "data_bytes": self.data_bytes,
            "zeroed_bytes": self.zeroed_bytes,
            "hole_ranges": self.hole_ranges,
            "zero_method": self.zero_method,
            "wire_bytes": self.wire_bytes,
            "seconds": self.elapsed.as_secs_f64(),
        })
    }
}

/// Bytes for people: `512 B`, `9.8 MiB`, `1014 MiB`, `1 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        let s = format!("{v:.1}");
        format!("{} {unit}", s.strip_suffix(".0").unwrap_or(&s))
    } else {
        format!("{v:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(10_276_044), "9.8 MiB");
        assert_eq!(human(1014 << 20), "1014 MiB");
        assert_eq!(human(1 << 30), "1 GiB");
    }

    #[test]
    fn the_summary_line() {
        let s = PushSummary {
            destination: "iscsi iqn.2026-12.org.imgbuild:busybox@10.99.0.1:3260 lun 1".into(),
            image: "out/busybox/rootfs.img".into(),
            image_bytes: 1 << 30,
            data_bytes: 10_276_044,
            zeroed_bytes: 1014 << 20,
            hole_ranges: 37,
            zero_method: "WRITE SAME".into(),
            wire_bytes: 10_400_000,
            elapsed: Duration::from_millis(1210),
        };
        assert_eq!(
            s.line(),
            "wrote 9.8 MiB of data and zeroed 1014 MiB in 37 ranges (WRITE SAME) to \
             iscsi iqn.2026-12.org.imgbuild:busybox@10.99.0.1:3260 lun 1 in 1.2 s; 9.9 MiB sent for a 1 GiB image"
        );
        let skipped = PushSummary {
            zeroed_bytes: 0,
            zero_method: "--assume-zeroed".into(),
            wire_bytes: 0,
            destination: "device /dev/sdb".into(),
            ..s.clone()
        };
        assert_eq!(
            skipped.line(),
            "wrote 9.8 MiB of data and left 37 ranges as they were (--assume-zeroed) to device /dev/sdb in 1.2 s"
        );
        assert_eq!(s.to_json()["zero_method"], "WRITE SAME");
    }
}

//! Reading a console transcript: kernel log timestamps (`[    2.345678] `)
//! and the init's `imgbuild-init:` lines.

/// The init's log prefix (see `imgbuild_init::kmsg::PREFIX`).
pub const INIT_PREFIX: &str = "imgbuild-init:";

/// The kernel timestamp (seconds since the kernel started) at the start of
/// a console line, if it has one.
pub fn kernel_time(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (num, _) = rest.split_once(']')?;
    num.trim().parse().ok()
}

/// The messages the init logged, in order, without the kernel and init
/// timestamps: `stage 2 (root)`, `eth0 configured: …`.
pub fn init_messages(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|l| {
            let after = &l[l.find(INIT_PREFIX)? + INIT_PREFIX.len()..];
            let after = after.trim_start();
            // The init's own `[    1.234567] ` stamp.
            let msg = match after.strip_prefix('[') {
                Some(r) => r.split_once(']').map_or(r, |(_, m)| m),
                None => after,
            };
            Some(msg.trim().to_string())
        })
        .collect()
}

/// Checks that init messages containing each of `needles` appear in this
/// order; on failure says which is missing or out of order.
pub fn in_order(messages: &[String], needles: &[&str]) -> Result<(), String> {
    let mut from = 0;
    for n in needles {
        match messages.iter().skip(from).position(|m| m.contains(n)) {
            Some(i) => from += i + 1,
            None => {
                let earlier = messages.iter().take(from).any(|m| m.contains(n));
                return Err(format!(
                    "init message containing {n:?} {} (after {:?}); init messages:\n{}",
                    if earlier {
                        "is out of order"
                    } else {
                        "is missing"
                    },
                    needles.first(),
                    messages.join("\n")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[    0.000000] Linux version 6.1.0\n\
        [    1.500000] imgbuild-init: [    1.499000] stage 1 (initramfs)\n\
        [    1.900000] imgbuild-init: [    1.899000] switched root; exec /sbin/init\n\
        [    2.000000] imgbuild-init: [    1.999000] stage 2 (root)\n\
        [    2.300000] imgbuild-init: [    2.299000] ==> eth0 up <==\n";

    #[test]
    fn timestamps() {
        assert_eq!(kernel_time("[    2.345678] x"), Some(2.345678));
        assert_eq!(kernel_time("[12345.000001] y"), Some(12345.000001));
        assert_eq!(kernel_time("no stamp"), None);
        assert_eq!(kernel_time("[abc] z"), None);
    }

    #[test]
    fn messages_and_order() {
        let m = init_messages(LOG);
        assert_eq!(m[0], "stage 1 (initramfs)");
        assert_eq!(m[3], "==> eth0 up <==");
        assert!(in_order(&m, &["stage 1", "switched root", "stage 2", "eth0 up"]).is_ok());
        let e = in_order(&m, &["stage 2", "stage 1"]).unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        let e = in_order(&m, &["rescue"]).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}

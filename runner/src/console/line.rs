//! The lines imgrun types into the guest's console shell (busybox `ash` on
//! ttyS0 or hvc0): every word single-quoted, and no control character ever
//! sent raw, because the tty's line discipline acts on them (`^C` is SIGINT,
//! `^U` kills the line, `^?` erases, a newline ends the line) and, while the
//! shell edits lines itself, `^I` completes. A control character in a word is
//! made by `printf` in the guest instead; a newline by a variable the line
//! sets first (a command substitution would drop a trailing newline).
//!
//! A line goes through the tty's canonical mode, which holds at most
//! [`MAX_LINE`] bytes with the newline: a longer one is refused here.

use std::fmt::Write as _;

/// The longest line the console's tty takes in canonical mode, its newline
/// included (the kernel's `N_TTY_BUF_SIZE` is 4096 and keeps one byte).
pub const MAX_LINE: usize = 4095;

/// While a command runs, the console shows only the kernel's errors (log
/// level 4, as with `quiet`): its info and warnings (a link coming up, the
/// init's own lines) would land in the middle of the output. They are in
/// `dmesg`; the level is put back afterwards.
const QUIET_KERNEL: &str = "_imgrun_lvl=$(cut -f1 /proc/sys/kernel/printk 2>/dev/null); { echo 4 >/proc/sys/kernel/printk; } 2>/dev/null; ";

/// Set at the start of every command line: `"$_imgrun_nl"` is a newline.
const NEWLINE_PRELUDE: &str = "_imgrun_nl=$(printf '\\nx'); _imgrun_nl=${_imgrun_nl%x}; ";

/// Why a command cannot be typed into the console.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Nothing to run.
    #[error("{what}: no command given")]
    Empty { what: &'static str },
    /// Longer than the tty takes.
    #[error(
        "{what}: the line typed into the guest's console would be {len} bytes, and the console's tty takes at most {MAX_LINE} (its canonical-mode line limit): shorten the command, or ship a script in the image ([[rootfs.files]] in the recipe) and run that"
    )]
    TooLong { what: &'static str, len: usize },
}

/// One argument as one single-quoted shell word that the guest's shell
/// expands to exactly `arg`.
pub fn quote(arg: &str) -> String {
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('\'');
    for c in arg.chars() {
        match c {
            '\'' => s.push_str("'\\''"),
            '\n' => s.push_str("'\"$_imgrun_nl\"'"),
            c if c.is_ascii_control() => {
                // `"$(printf '\003')"`: the byte, made in the guest.
                let _ = write!(s, "'\"$(printf '\\{:03o}')\"'", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// `imgrun run -- CMD ARGS…`: the argv as a shell command whose words are
/// exactly `argv` (the first one quoted too: no keyword, alias or
/// assignment is read into it).
pub fn argv_script(argv: &[String]) -> Result<String, LineError> {
    if argv.is_empty() {
        return Err(LineError::Empty {
            what: "imgrun run: CMD (after `--`)",
        });
    }
    Ok(argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
}

/// A command given as one string of shell code (`--workload 'CMD'`): run
/// as the shell would read it, through `eval`.
pub fn eval_script(code: &str, what: &'static str) -> Result<String, LineError> {
    if code.trim().is_empty() {
        return Err(LineError::Empty { what });
    }
    Ok(format!("eval {}", quote(code)))
}

/// The markers around one command's output, with `nonce` in them. Each is
/// printed by `printf` from a `%s` format, so the line as typed (echoed if
/// the echo is still on) never contains a marker itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    /// After `stty -echo` worked.
    pub ready: String,
    /// When `stty` failed (none in the image).
    pub no_stty: String,
    /// Before the command's output.
    pub begin: String,
    /// After it, followed by a space and the exit status.
    pub end: String,
}

impl Markers {
    pub fn new(nonce: &str) -> Markers {
        Markers {
            ready: format!("@imgrun-{nonce}-ready"),
            no_stty: format!("@imgrun-{nonce}-nostty"),
            begin: format!("@imgrun-{nonce}-begin"),
            end: format!("@imgrun-{nonce}-end "),
        }
    }
}

/// Turns the echo off, then says whether that worked. The nonce comes
/// from a variable the line sets first: a line that lost its first bytes
/// (typed while the shell's tty was being opened) prints no marker.
pub fn ready_line(nonce: &str) -> String {
    format!(
        "_imgrun_n={nonce}; stty -echo 2>/dev/null && printf '@imgrun-%s-ready\\n' \"$_imgrun_n\" || printf '@imgrun-%s-nostty\\n' \"$_imgrun_n\""
    )
}

/// The line is one `{ …; }` group: a line that lost its first bytes is a
/// syntax error, run not at all.
///
/// The line that runs `script` in a subshell in `/`, stdin from
/// `/dev/null`, between the markers, the kernel quiet on the console
/// ([`QUIET_KERNEL`]), prints its exit status and turns the echo back on. Each marker is printed twice, so that a kernel message
/// printed into the middle of one cannot hide it. The end marker follows
/// the output directly: output without a final newline ends where the
/// marker starts.
pub fn exec_line(nonce: &str, script: &str, what: &'static str) -> Result<String, LineError> {
    let line = format!(
        "{{ {NEWLINE_PRELUDE}{QUIET_KERNEL}printf '\\n@imgrun-%s-begin\\n@imgrun-%s-begin\\n' {nonce} {nonce}; \
         ( cd / && {script} ) </dev/null; \
         _imgrun_rc=$?; printf '@imgrun-%s-end %d\\n@imgrun-%s-end %d\\n' {nonce} $_imgrun_rc {nonce} $_imgrun_rc; \
         {{ echo \"${{_imgrun_lvl:-7}}\" >/proc/sys/kernel/printk; stty echo; }} 2>/dev/null; }}"
    );
    if line.len() + 1 > MAX_LINE {
        return Err(LineError::TooLong {
            what,
            len: line.len() + 1,
        });
    }
    Ok(line)
}

/// A nonce as long as the ones [`super::session`] makes, for checking a
/// command's length before anything boots.
pub const NONCE_PLACEHOLDER: &str = "0000000000000000";

/// Checks that `script` fits on a console line ([`exec_line`]).
pub fn check_fits(script: &str, what: &'static str) -> Result<(), LineError> {
    exec_line(NONCE_PLACEHOLDER, script, what).map(|_| ())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn words_are_single_quoted() {
        assert_eq!(quote("sh"), "'sh'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a\nb"), "'a'\"$_imgrun_nl\"'b'");
        assert_eq!(
            quote("\u{3}\t\u{7f}"),
            "''\"$(printf '\\003')\"''\"$(printf '\\011')\"''\"$(printf '\\177')\"''"
        );
        assert_eq!(
            argv_script(&["sh".into(), "-c".into(), "exit 7".into()]).unwrap(),
            "'sh' '-c' 'exit 7'"
        );
    }

    /// What goes on the wire: printable ASCII and UTF-8 only (tab neither).
    #[test]
    fn no_control_character_is_ever_sent() {
        let all: String = (0u8..=127).map(char::from).collect();
        let line = exec_line("n", &argv_script(&[all, "ünï".into()]).unwrap(), "t").unwrap();
        assert!(line.chars().all(|c| !c.is_control()), "{line:?}");
    }

    /// `line` with the kernel's log level swapped for `/dev/null`: this
    /// machine's kernel is not the guest's.
    pub(crate) fn on_host(line: &str) -> String {
        line.replace("/proc/sys/kernel/printk", "/dev/null")
    }

    #[test]
    fn the_kernel_is_quiet_while_the_command_runs_and_as_before_after() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "7\t4\t1\t7\n").unwrap();
        let line = exec_line("n", "cat /proc/sys/kernel/printk", "t")
            .unwrap()
            .replace("/proc/sys/kernel/printk", &f.path().to_string_lossy());
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("begin\n4\n@imgrun-n-end 0"), "{text:?}");
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "7\n");
    }

    fn awkward() -> Vec<String> {
        [
            "printf",
            "%s\\0",
            "",
            "two words",
            "it's",
            "$(touch /tmp/imgrun-line-pwned)",
            "`id`",
            "$HOME ${x:-y} $1 $@ $$",
            "a;b|c&d>e<f",
            "\"double\" \\back\\slash",
            "new\nline",
            "trailing newline\n",
            "\n",
            "tab\there \u{3} \u{15} \u{1b}[6n \u{7f}",
            "*?[x]~{a,b}",
            "-n",
            "if",
            "A=b",
            "ünïcødé",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The real oracle: a POSIX shell reads the line back into the exact
    /// argv (busybox ash is checked the same way in the guest by the QEMU
    /// tests), and the markers come out around the output.
    #[test]
    fn sh_reads_back_the_exact_argv() {
        let argv = awkward();
        let line = exec_line("abc", &argv_script(&argv).unwrap(), "t").unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(on_host(&line))
            .output()
            .unwrap();
        // (Its status is stty's, which fails here: there is no tty.)
        assert!(out.stderr.is_empty(), "{line}: {out:?}");
        let text = out.stdout;
        let begin = b"\n@imgrun-abc-begin\n@imgrun-abc-begin\n";
        let end = b"@imgrun-abc-end 0\n@imgrun-abc-end 0\n";
        assert!(
            text.starts_with(begin),
            "{:?}",
            String::from_utf8_lossy(&text)
        );
        assert!(text.ends_with(end), "{:?}", String::from_utf8_lossy(&text));
        let body = &text[begin.len()..text.len() - end.len()];
        let got: Vec<&[u8]> = body.split(|&b| b == 0).collect();
        let want: Vec<&[u8]> = argv[2..]
            .iter()
            .map(|s| s.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(got, want);
        assert!(!std::path::Path::new("/tmp/imgrun-line-pwned").exists());
    }

    #[test]
    fn eval_runs_shell_code_as_written() {
        let code = "x='a b'; printf '%s|' \"$x\" $x; printf '\\n'; exit 3";
        let line = exec_line("n", &eval_script(code, "t").unwrap(), "t").unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(on_host(&line))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("begin\na b|a|b|\n@imgrun-n-end 3\n"),
            "{text:?}"
        );
        assert_eq!(
            eval_script("  ", "--workload"),
            Err(LineError::Empty { what: "--workload" })
        );
    }

    #[test]
    fn the_status_is_the_commands_and_the_directory_is_root() {
        let line = exec_line("n", "pwd; exit 7", "t").unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(on_host(&line))
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("begin\n/\n@imgrun-n-end 7\n"), "{text:?}");
    }

    #[test]
    fn lines_over_the_tty_limit_are_refused() {
        let fits = check_fits(&"x".repeat(3500), "imgrun run");
        assert_eq!(fits, Ok(()));
        let e = check_fits(&"x".repeat(4000), "imgrun run").unwrap_err();
        assert!(
            matches!(e, LineError::TooLong { len, .. } if len > MAX_LINE),
            "{e}"
        );
        assert!(e.to_string().contains("at most 4095"), "{e}");
        assert!(argv_script(&[]).is_err());
    }

    /// What a shell just opening its tty may get: the line without its
    /// first bytes. No such line prints a marker or runs the command.
    #[test]
    fn a_line_that_lost_its_start_does_nothing() {
        let ready = ready_line("n1");
        for k in 1..ready.len() {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("stty() {{ :; }}\n{}", &ready[k..]))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains("@imgrun-n1-"), "{:?}: {text:?}", &ready[k..]);
        }
        let exec = exec_line("n1", "echo RAN", "t").unwrap();
        for k in 1..exec.len() {
            let out = Command::new("sh")
                .arg("-c")
                .arg(on_host(&exec[k..]))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("RAN") && !text.contains("@imgrun-n1-"),
                "{:?}: {text:?}",
                &exec[k..]
            );
        }
    }

    #[test]
    fn the_ready_line_says_whether_stty_worked() {
        // No tty here: stty fails, as in an image without it.
        let out = Command::new("sh")
            .arg("-c")
            .arg(ready_line("n"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "@imgrun-n-nostty\n");
        assert!(!ready_line("n").contains("@imgrun-n-"));
    }
}

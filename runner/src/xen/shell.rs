//! POSIX shell quoting for the one place a command must become a string:
//! ssh joins its remote arguments with spaces and hands them to the remote
//! user's shell, so every argument is quoted here first.

/// Characters that never need quoting in a POSIX shell word.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b)
}

/// One argument as a single POSIX shell word that expands to exactly `arg`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.bytes().all(is_plain) {
        return arg.to_string();
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            // close, an escaped quote, reopen
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

/// An argv as one shell command line whose words are exactly `argv`.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("xl"), "xl");
        assert_eq!(
            quote("/srv/out/busybox/busybox.cfg"),
            "/srv/out/busybox/busybox.cfg"
        );
        assert_eq!(quote("root@10.99.0.12"), "root@10.99.0.12");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    /// The real oracle: /bin/sh must split the joined line back into the argv.
    #[test]
    fn sh_reads_back_the_exact_argv() {
        let argv = [
            "printf",
            "%s\\0",
            "",
            "two words",
            "it's",
            "$(touch /tmp/imgrun-quote-pwned)",
            "`id`",
            "a;b|c&d>e<f",
            "\"double\" \\back\\slash",
            "new\nline",
            "*?[x]~{a,b}",
            "-n",
            "ünïcødé",
        ];
        let line = join(&argv);
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        // printf '%s\0' prints each argument followed by NUL: one empty tail.
        let want: Vec<&[u8]> = argv[2..]
            .iter()
            .map(|s| s.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(got, want);
        assert!(!std::path::Path::new("/tmp/imgrun-quote-pwned").exists());
    }
}

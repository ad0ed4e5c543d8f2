//! Word lists in `init.conf` (the console `shell`, each `service`'s
//! command): words separated by white space; a word with spaces, quotes or
//! backslashes is written in double quotes with `\"` and `\\` escapes.
//! [`join_words`] writes what [`split_words`] reads back.

/// Splits a word list: words separated by whitespace, `"…"` quoting with
/// `\"` and `\\` escapes inside quotes.
pub fn split_words(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated double quote"),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => word.push(c),
                        _ => return Err("only \\\" and \\\\ escapes are allowed in quotes"),
                    },
                    Some(c) => word.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a closing quote must end the word");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err("a quote may only start a word");
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
}

/// Joins words so that [`split_words`] gives them back.
pub fn join_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.as_ref();
        if i > 0 {
            out.push(' ');
        }
        let plain = !w.is_empty()
            && !w
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\');
        if plain {
            out.push_str(w);
        } else {
            out.push('"');
            for c in w.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(split_words("  a  \"b c\" d ").unwrap(), ["a", "b c", "d"]);
        assert!(split_words("a\"b").is_err());
        assert!(split_words("\"a\"b").is_err());
        assert!(split_words("\"a").is_err());
        assert_eq!(join_words(&["x", "y z"]), "x \"y z\"");
        let odd = ["/bin/echo", "hello \"world\"", "a\\b", ""];
        assert_eq!(split_words(&join_words(&odd)).unwrap(), odd);
    }
}

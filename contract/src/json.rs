//! A tiny JSON writer for the status service's flat replies: the init
//! writes them without serde, which stays out of the 1.5 MiB PID 1.

use std::fmt::Write as _;

/// Builds one JSON object, keys in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    out: String,
}

/// Appends `s` as a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        push_str(&mut self.out, k);
        self.out.push(':');
    }

    /// Adds a string member.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_str(&mut self.out, v);
        self
    }

    /// Adds a number member.
    pub fn num(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// Adds a boolean member.
    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// Adds an array-of-strings member.
    pub fn strs(mut self, k: &str, v: &[String]) -> Self {
        self.key(k);
        self.out.push('[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_str(&mut self.out, s);
        }
        self.out.push(']');
        self
    }

    /// The finished object text.
    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_shapes() {
        let j = Obj::new()
            .str("a", "q\"\\\n\u{1}é")
            .num("n", 5)
            .bool("ok", true)
            .strs("l", &["x".into(), "y".into()])
            .finish();
        assert_eq!(j, r#"{"a":"q\"\\\n\u0001é","n":5,"ok":true,"l":["x","y"]}"#);
        assert_eq!(Obj::new().finish(), "{}");
        assert_eq!(Obj::new().strs("l", &[]).finish(), r#"{"l":[]}"#);
    }
}

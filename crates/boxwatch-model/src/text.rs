//! Untrusted text on an operator's terminal. File names, argv, comm, labels and
//! rule output built from them come from containers: an escape sequence or a
//! newline in one must not rewrite the screen or forge a line. Human output
//! (`boxwatch run --output human`, `boxwatch alerts`, `boxwatch ps`) goes through
//! these functions; JSON output keeps the strings intact (JSON escapes them).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters shown as `\u{…}`: control characters (C0, DEL, C1) and the bidi
/// overrides and isolates that reorder what follows them.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Append `s` with control and bidi characters escaped as `\u{…}`; nothing else changes.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// `s` with control and bidi characters escaped (borrowed when there are none).
pub fn escaped(s: &str) -> Cow<'_, str> {
    if s.chars().any(needs_escape) {
        let mut out = String::with_capacity(s.len() + 8);
        push_escaped(&mut out, s);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// Shell-like quoting for one word (argv element, path): quoted with `'…'` when it is
/// empty or has whitespace or quotes, and escaped as [`push_escaped`] does.
pub fn push_quoted(out: &mut String, s: &str) {
    let quote = s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '\'' || c == '"');
    if quote {
        out.push('\'');
    }
    for c in s.chars() {
        match c {
            '\'' if quote => out.push_str("'\\''"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if quote {
        out.push('\'');
    }
}

/// Words quoted with [`push_quoted`], separated by spaces.
pub fn quoted_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_quoted(&mut out, w.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_terminal_tricks() {
        let mut s = String::new();
        push_quoted(&mut s, "a\x1b[31mb\n\u{202e}");
        assert_eq!(s, "'a\\u{1b}[31mb\\u{a}\\u{202e}'");
        s.clear();
        push_quoted(&mut s, "it's");
        assert_eq!(s, "'it'\\''s'");
        assert_eq!(escaped("/etc/x\x1b[31my\nz"), "/etc/x\\u{1b}[31my\\u{a}z");
        assert_eq!(escaped("C1 \u{9b}2J del \x7f"), "C1 \\u{9b}2J del \\u{7f}");
        assert!(matches!(escaped("plain text (ok)"), Cow::Borrowed(_)));
        assert_eq!(quoted_words(&["sh", "-c", "cat /etc/shadow", ""]), "sh -c 'cat /etc/shadow' ''");
    }
}

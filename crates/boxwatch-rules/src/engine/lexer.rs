//! Tokens of a condition string, with byte spans into it.
//!
//! A word is any run of characters other than blanks, `( ) ,`, quotes and `= < > !`, so
//! paths (`/etc/`), field names (`proc.aname[2]`) and flag names (`O_CREAT`) need no quotes.
//! Quoted strings use `"` or `'` with backslash escapes (`\\ \" \' \n \t`).

/// Byte range `[start, end)` in the condition text.
pub(crate) type Span = (usize, usize);

/// A comparison operator spelled with symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Sym(Sym),
    /// A bare word; keywords are words too, the parser decides.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// An error at a byte offset of the condition.
pub(crate) type LexError = (usize, String);

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '\'' | '=' | '<' | '>' | '!'))
}

pub(crate) fn lex(text: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let next_is_eq = matches!(it.peek(), Some((_, '=')));
        let (tok, end) = match c {
            c if c.is_whitespace() => continue,
            '(' => (Tok::LParen, i + 1),
            ')' => (Tok::RParen, i + 1),
            ',' => (Tok::Comma, i + 1),
            '=' | '!' | '<' | '>' if next_is_eq => {
                it.next();
                let s = match c {
                    '=' => Sym::Eq,
                    '!' => Sym::Ne,
                    '<' => Sym::Le,
                    _ => Sym::Ge,
                };
                (Tok::Sym(s), i + 2)
            }
            '=' => (Tok::Sym(Sym::Eq), i + 1),
            '<' => (Tok::Sym(Sym::Lt), i + 1),
            '>' => (Tok::Sym(Sym::Gt), i + 1),
            '!' => return Err((i, "unexpected '!': use 'not' to negate, or '!=' to compare".into())),
            '"' | '\'' => {
                let mut s = String::new();
                let end = loop {
                    match it.next() {
                        None => return Err((i, "unterminated string".into())),
                        Some((j, q)) if q == c => break j + 1,
                        Some((j, '\\')) => match it.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, e @ ('\\' | '"' | '\''))) => s.push(e),
                            // As Falco: any other escaped character stays as written.
                            Some((_, e)) => {
                                let _ = j;
                                s.push('\\');
                                s.push(e);
                            }
                            None => return Err((i, "unterminated string".into())),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                };
                (Tok::Str(s), end)
            }
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, ch)) = it.peek() {
                    if !is_word_char(ch) {
                        break;
                    }
                    end = j + ch.len_utf8();
                    it.next();
                }
                (Tok::Word(text[i..end].to_string()), end)
            }
        };
        out.push(Token { tok, span: (i, end) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_symbols_and_strings() {
        use Tok::*;
        assert_eq!(
            toks("fd.name=/etc/x and(proc.aname[2] != 'a b' , \"q\\\"x\")>=<"),
            vec![
                Word("fd.name".into()),
                Sym(super::Sym::Eq),
                Word("/etc/x".into()),
                Word("and".into()),
                LParen,
                Word("proc.aname[2]".into()),
                Sym(super::Sym::Ne),
                Str("a b".into()),
                Comma,
                Str("q\"x".into()),
                RParen,
                Sym(super::Sym::Ge),
                Sym(super::Sym::Lt),
            ]
        );
        assert_eq!(toks("a == b"), vec![Word("a".into()), Sym(super::Sym::Eq), Word("b".into())]);
    }

    #[test]
    fn spans_and_errors() {
        let t = lex("  é = 'x'").unwrap();
        assert_eq!(t[0].span, (2, 4));
        assert_eq!(t[2].span, (7, 10));
        assert_eq!(lex("a = 'open").unwrap_err().0, 4);
        assert_eq!(lex("! a").unwrap_err().0, 0);
        assert_eq!(toks("'\\ x'"), vec![Tok::Str("\\ x".into())]);
    }
}

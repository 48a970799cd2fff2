//! A YAML document as a small tree of positioned nodes, and source positions.
//!
//! Built on `libyaml-safer`'s event parser (a Rust port of libyaml, so it reads what Falco's
//! own rules files rely on, such as a flow sequence whose closing `]` sits at its key's
//! indentation), which gives a start mark (line, char column) for every scalar and
//! collection: that is what lets an error point at the offending scalar, and at a token inside
//! a condition string ([`Source::pos_in_scalar`]). All scalars stay strings
//! (no YAML type resolution); anchors are ignored and aliases are refused, so a file cannot
//! expand exponentially. Nesting is capped at [`MAX_DEPTH`], so the tree is never deep enough
//! to exhaust the stack when built or dropped.

use libyaml_safer::{EventData as YEvent, Mark as YMark, Parser, ScalarStyle};

use super::RuleError;

/// Deepest collection nesting accepted in a rules file.
pub(crate) const MAX_DEPTH: usize = 32;

/// How a scalar was written: decides how offsets in its value map back to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    Quoted,
    Block,
}

/// A position in a source: byte offset and 1-based line and (character) column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub byte: usize,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug)]
pub(crate) enum Node {
    Scalar { value: String, style: Style, mark: Mark },
    Seq { items: Vec<Node>, mark: Mark },
    Map { entries: Vec<(Node, Node)>, mark: Mark },
}

impl Node {
    pub fn mark(&self) -> Mark {
        match self {
            Node::Scalar { mark, .. } | Node::Seq { mark, .. } | Node::Map { mark, .. } => *mark,
        }
    }

    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A plain scalar spelling YAML null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { value, style: Style::Plain, .. }
            if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Scalar { .. } => "a scalar",
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
        }
    }
}

/// One rules file: its name (for messages) and text.
#[derive(Debug)]
pub(crate) struct Source {
    pub name: String,
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: &str, text: &str) -> Source {
        let mut line_starts = vec![0];
        let b = text.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            let lone_cr = c == b'\r' && b.get(i + 1) != Some(&b'\n');
            if c == b'\n' || lone_cr {
                line_starts.push(i + 1);
            }
        }
        Source { name: name.to_string(), text: text.to_string(), line_starts }
    }

    /// A libyaml mark (0-based line and char column) as a [`Mark`].
    fn mark(&self, m: &YMark) -> Mark {
        let line =
            usize::try_from(m.line).unwrap_or(usize::MAX).saturating_add(1).min(self.line_starts.len());
        let col = usize::try_from(m.column).unwrap_or(0);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(self.text.len());
        let rest = self.text.get(start..).unwrap_or("");
        let byte = start + rest.char_indices().nth(col).map_or(rest.len(), |(i, _)| i);
        Mark { byte, line, col: col + 1 }
    }

    /// Line and column of a byte offset.
    pub fn mark_at(&self, byte: usize) -> Mark {
        let byte = byte.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..byte).map_or(1, |s| s.chars().count() + 1);
        Mark { byte, line, col }
    }

    pub fn error(&self, mark: Mark, message: impl Into<String>) -> RuleError {
        RuleError { file: self.name.clone(), line: mark.line, column: mark.col, message: message.into() }
    }

    /// The source position of byte `offset` of a scalar's value, given where the scalar starts.
    ///
    /// Value characters are matched in order against the source text, skipping what YAML
    /// removed (indentation, line breaks, quotes, escape backslashes). Exact for plain and
    /// block scalars and for quoted ones without escapes; close otherwise.
    pub fn pos_in_scalar(&self, start: Mark, style: Style, value: &str, offset: usize) -> Mark {
        // A block scalar is marked at its `|`/`>` header; its content starts on the next line.
        let start = match (style, self.text.get(start.byte..)) {
            (Style::Block, Some(rest)) if rest.starts_with(['|', '>']) => {
                rest.find('\n').map_or(start, |nl| self.mark_at(start.byte + nl + 1))
            }
            _ => start,
        };
        let mut src = self.text.get(start.byte..).unwrap_or("").char_indices().peekable();
        if style == Style::Quoted {
            src.next();
        }
        let mut at = start.byte;
        // Just after the last matched character: where an offset past the end points.
        let mut end = start.byte;
        for (vi, vc) in value.char_indices() {
            let target = vi >= offset;
            while let Some(&(si, sc)) = src.peek() {
                if sc == vc {
                    at = start.byte + si;
                    if !target {
                        src.next();
                        end = at + sc.len_utf8();
                    }
                    break;
                }
                if sc.is_whitespace() || matches!(sc, '\\' | '"' | '\'') {
                    src.next();
                    continue;
                }
                if vc.is_whitespace() {
                    break;
                }
                at = start.byte + si;
                if !target {
                    src.next();
                    end = at + sc.len_utf8();
                }
                break;
            }
            if target {
                return self.mark_at(at);
            }
        }
        self.mark_at(if offset >= value.len() { end } else { at })
    }
}

/// Parse a source into its single document's root node (`None` for an empty file).
pub(crate) fn parse(src: &Source) -> Result<Option<Node>, RuleError> {
    // libyaml is fuzzed upstream; the catch is a last line of defence so a parser bug
    // becomes an error message rather than a crashed daemon.
    match std::panic::catch_unwind(|| build(src)) {
        Ok(r) => r,
        Err(_) => Err(src.error(Mark { byte: 0, line: 1, col: 1 }, "internal YAML parser failure")),
    }
}

enum Frame {
    Seq(Vec<Node>, Mark),
    Map(Vec<(Node, Node)>, Option<Node>, Mark),
}

fn build(src: &Source) -> Result<Option<Node>, RuleError> {
    let mut bytes = src.text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut bytes);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    loop {
        let ev = parser.parse().map_err(|e| {
            let m = e.problem_mark().map_or(Mark { byte: 0, line: 1, col: 1 }, |m| src.mark(&m));
            let what = match e.context() {
                Some(c) => format!("{} {c}", e.problem()),
                None => e.problem().to_string(),
            };
            src.error(m, format!("YAML syntax error: {what}"))
        })?;
        let mark = src.mark(&ev.start_mark);
        let node = match ev.data {
            YEvent::StreamEnd => return Ok(root),
            YEvent::DocumentStart { .. } => {
                documents += 1;
                if documents > 1 {
                    return Err(src.error(mark, "only one YAML document per rules file"));
                }
                continue;
            }
            YEvent::Alias { .. } => {
                return Err(src.error(mark, "YAML aliases are not supported in rules files"));
            }
            YEvent::SequenceStart { .. } | YEvent::MappingStart { .. } => {
                if stack.len() >= MAX_DEPTH {
                    return Err(src.error(mark, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                stack.push(match ev.data {
                    YEvent::SequenceStart { .. } => Frame::Seq(Vec::new(), mark),
                    _ => Frame::Map(Vec::new(), None, mark),
                });
                continue;
            }
            YEvent::Scalar { value, style, .. } => {
                let style = match style {
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                    _ => Style::Plain,
                };
                Node::Scalar { value, style, mark }
            }
            YEvent::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, mark)) => Node::Seq { items, mark },
                _ => return Err(src.error(mark, "malformed YAML sequence")),
            },
            YEvent::MappingEnd => match stack.pop() {
                // A block mapping is where its first key is.
                Some(Frame::Map(entries, None, mark)) => {
                    let mark = entries.first().map_or(mark, |(k, _)| k.mark());
                    Node::Map { entries, mark }
                }
                _ => return Err(src.error(mark, "malformed YAML mapping")),
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(&Source::new("t.yaml", text)).unwrap().unwrap()
    }

    #[test]
    fn positions_are_one_based() {
        let n = root("- a: x\n  b: [1, 2]\n");
        let Node::Seq { items, .. } = n else { panic!() };
        let Node::Map { entries, .. } = &items[0] else { panic!() };
        assert_eq!((entries[0].0.mark().line, entries[0].0.mark().col), (1, 3));
        assert_eq!((entries[1].0.mark().line, entries[1].0.mark().col), (2, 3));
    }

    #[test]
    fn offsets_inside_folded_and_plain_scalars() {
        let text = "c: >\n  evt.type = x and\n    proc.nam = y\nd: plain\n  more words\n";
        let src = Source::new("t", text);
        let Node::Map { entries, .. } = parse(&src).unwrap().unwrap() else { panic!() };
        let (Node::Scalar { value, style, mark }, _) = (&entries[0].1, ()) else { panic!() };
        let off = value.find("proc.nam").unwrap();
        let m = src.pos_in_scalar(*mark, *style, value, off);
        assert_eq!((m.line, m.col), (3, 5));
        let Node::Scalar { value, style, mark } = &entries[1].1 else { panic!() };
        let m = src.pos_in_scalar(*mark, *style, value, value.find("words").unwrap());
        assert_eq!((m.line, m.col), (5, 8));
    }

    #[test]
    fn offsets_in_quoted_scalars_and_unicode() {
        let text = "é: \"ab \\\" cd\"\n";
        let src = Source::new("t", text);
        let Node::Map { entries, .. } = parse(&src).unwrap().unwrap() else { panic!() };
        let Node::Scalar { value, style, mark } = &entries[0].1 else { panic!() };
        assert_eq!(value, "ab \" cd");
        let m = src.pos_in_scalar(*mark, *style, value, value.find("cd").unwrap());
        assert_eq!((m.line, m.col), (1, 11));
    }

    #[test]
    fn errors_and_limits() {
        let e = parse(&Source::new("f.yaml", "a: [1, 2\nb: c")).unwrap_err();
        assert!(e.to_string().starts_with("f.yaml:2:"), "{e}");
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&Source::new("f", &deep)).unwrap_err().message.contains("nesting"));
        assert!(parse(&Source::new("f", "a: &x 1\nb: *x\n")).unwrap_err().message.contains("alias"));
        assert!(parse(&Source::new("f", "")).unwrap().is_none());
        assert!(parse(&Source::new("f", "a\n---\nb\n")).is_err());
    }

    #[test]
    fn flow_sequence_closed_at_its_keys_indentation() {
        // Falco's sandbox rules file writes lists this way; libyaml and yaml-cpp accept it.
        let n = root("- list: x\n  items: [\n    \"a\",\n    'b'\n  ]\n- macro: y\n");
        let Node::Seq { items, .. } = n else { panic!() };
        assert_eq!(items.len(), 2);
        let Node::Map { entries, .. } = &items[0] else { panic!() };
        let Node::Seq { items: vals, .. } = &entries[1].1 else { panic!() };
        assert_eq!(vals.iter().filter_map(Node::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((vals[0].mark().line, vals[0].mark().col), (3, 5));
    }
}

//! A YAML (or JSON) document as a tree of nodes that remember their line.
//!
//! Envoy configs are YAML or JSON; JSON is (for our purposes) a subset of YAML, so one
//! parser reads both, trailing commas included. The tree keeps every scalar as written
//! (plus whether it was quoted) so that the decoder, not the parser, decides what a
//! value means: proto3's JSON mapping allows `"5"` for a uint64 and `5` for a string
//! field, and an enum by name or by number. Anchors and aliases are expanded.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};

/// One node of a parsed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// 1-based line where the node starts.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing at all.
    Null,
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys in document order; a key is a scalar with its own line.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u32,
}

/// Why a document could not be read as a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "scalar",
            Value::Seq(_) => "list",
            Value::Map(_) => "object",
        }
    }
}

/// Parse one YAML or JSON document. An empty document is `Null`.
///
/// A syntax error is reported where the problem starts: the parser notices an unclosed
/// flow collection (`[` or `{`) only where the document stops making sense, often its
/// end, so such an error names the line of the opening bracket.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder { lines: text.lines().collect(), ..Builder::default() };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let line = e.marker().line() as u32;
        let message = e.info().to_string();
        return Err(match builder.innermost_open_flow() {
            Some((open, bracket)) if open < line => SyntaxError {
                line: open,
                message: format!("the `{bracket}` opened here is never closed ({message}, at line {line})"),
            },
            _ => SyntaxError { line, message },
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node { value: Value::Null, line: 1 }))
}

enum Frame {
    Seq { node: Node, anchor: usize, flow: bool },
    Map { node: Node, anchor: usize, pending_key: Option<Key>, flow: bool },
}

#[derive(Default)]
struct Builder<'t> {
    /// The document's lines, to tell a flow collection (`[`, `{`) from a block one.
    lines: Vec<&'t str>,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
}

impl Builder<'_> {
    /// Whether the collection starting at `span` is written in flow style.
    fn is_flow(&self, span: &Span) -> bool {
        let (line, col) = (span.start.line(), span.start.col());
        let text = line.checked_sub(1).and_then(|l| self.lines.get(l));
        text.and_then(|t| t.chars().nth(col)).is_some_and(|c| c == '[' || c == '{')
    }

    /// The line and bracket of the innermost flow collection still open.
    fn innermost_open_flow(&self) -> Option<(u32, char)> {
        self.stack.iter().rev().find_map(|f| match f {
            Frame::Seq { node, flow: true, .. } => Some((node.line, '[')),
            Frame::Map { node, flow: true, .. } => Some((node.line, '{')),
            _ => None,
        })
    }

    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { node: seq, .. }) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map { node: map, pending_key, .. }) => match pending_key.take() {
                None => {
                    let name = match &node.value {
                        Value::Scalar { text, .. } => text.clone(),
                        Value::Null => String::new(),
                        _ => {
                            self.error.get_or_insert(SyntaxError {
                                line: node.line,
                                message: "a key must be a scalar".into(),
                            });
                            return;
                        }
                    };
                    *pending_key = Some(Key { name, line: node.line });
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn line_of(span: &Span) -> u32 {
    span.start.line() as u32
}

impl<'input> SpannedEventReceiver<'input> for Builder<'_> {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        let line = line_of(&span);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let value = if !quoted && matches!(text.as_ref(), "~" | "null" | "Null" | "NULL" | "") {
                    Value::Null
                } else {
                    Value::Scalar { text: Cow::into_owned(text), quoted }
                };
                self.push_value(Node { value, line }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                let flow = self.is_flow(&span);
                self.stack.push(Frame::Seq { node: Node { value: Value::Seq(Vec::new()), line }, anchor, flow })
            }
            Event::MappingStart(anchor, _) => {
                let flow = self.is_flow(&span);
                self.stack.push(Frame::Map {
                    node: Node { value: Value::Map(Vec::new()), line },
                    anchor,
                    pending_key: None,
                    flow,
                })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (node, anchor) = match frame {
                        Frame::Seq { node, anchor, .. } => (node, anchor),
                        Frame::Map { node, anchor, .. } => (node, anchor),
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = node.clone();
                    self.push_value(node, 0);
                }
                None => {
                    self.error = Some(SyntaxError { line, message: "unknown alias".into() });
                }
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn yaml_map_with_lines() {
        let n = parse("a: 1\nb:\n  - x\n  - \"y\"\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].0.name, "a");
        assert_eq!(m[0].0.line, 1);
        assert_eq!(m[1].0.line, 2);
        let Value::Seq(items) = &m[1].1.value else { panic!() };
        assert_eq!(scalar(&items[0]), "x");
        assert_eq!(items[1].line, 4);
        assert!(matches!(items[1].value, Value::Scalar { quoted: true, .. }));
    }

    #[test]
    fn json_with_trailing_comma() {
        let n = parse("{\"tests\": [{\"a\": 1,}, ],}").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].0.name, "tests");
    }

    #[test]
    fn anchors_expand() {
        let n = parse("a: &x {k: v}\nb: *x\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].1.value, m[1].1.value);
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn null_forms() {
        let n = parse("a: ~\nb:\nc: null\nd: \"\"\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].1.value, Value::Null);
        assert_eq!(m[1].1.value, Value::Null);
        assert_eq!(m[2].1.value, Value::Null);
        assert_eq!(m[3].1.value, Value::Scalar { text: String::new(), quoted: true });
    }
}

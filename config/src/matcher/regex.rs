//! The regex matchers of `type.matcher.v3`: `RegexMatcher` compiled for whole-value
//! matching (RE2 `FullMatch`), and `RegexMatchAndSubstitute` with RE2's rewrite syntax
//! (`\0`..`\9`, `\\`). Compiled at load; a bad pattern or substitution is a config
//! error naming its path.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// A `safe_regex` compiled for whole-value matching (RE2 `FullMatch` semantics).
#[derive(Debug, Clone)]
pub struct FullRegex {
    pattern: String,
    compiled: regex::bytes::Regex,
}

impl FullRegex {
    /// Compile `pattern` anchored at both ends.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let anchored = format!("^(?:{pattern})$");
        let compiled = regex::bytes::Regex::new(&anchored).map_err(|e| regex_error(&e))?;
        Ok(FullRegex { pattern: pattern.to_string(), compiled })
    }

    /// The pattern as written in the config.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `value` matches.
    pub fn is_full_match(&self, value: &[u8]) -> bool {
        self.compiled.is_match(value)
    }
}

impl PartialEq for FullRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

fn regex_error(e: &regex::Error) -> String {
    // The regex crate's messages span several lines with a caret diagram; keep them
    // readable on one config-error line.
    let text = e.to_string();
    let detail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    format!("invalid regex: {}", detail.join(" "))
}

/// Decode a `type.matcher.v3.RegexMatcher` (`{google_re2: {}, regex: "..."}`) into its
/// pattern text.
fn decode_regex_pattern(d: &mut Decoder, node: &Node, path: &str) -> Option<(String, u32)> {
    let mut f = Fields::of(d, node, path)?;
    let regex: Option<String> = f.req(d, "regex");
    if let Some(engine) = f.take("google_re2") {
        // Deprecated; `max_program_size` has no equivalent in Rust's regex engine.
        let mut g = Fields::of(d, engine, &f.field_path("google_re2"))?;
        g.ignored(d, &["max_program_size"]);
        g.finish(d);
    }
    let line = f.line();
    f.finish(d);
    Some((regex?, line))
}

impl Decode for FullRegex {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let (pattern, line) = decode_regex_pattern(d, node, path)?;
        match FullRegex::new(&pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                d.error(ErrorKind::Invalid, &format!("{path}.regex"), line, e);
                None
            }
        }
    }
}

/// `type.matcher.v3.RegexMatchAndSubstitute`: every match of `pattern` (unanchored)
/// replaced by `substitution`, where `\0`..`\9` insert capture groups (RE2 rewrite
/// syntax) and `\\` is a backslash.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pattern: regex::Regex,
    substitution: String,
    pieces: Vec<RewritePiece>,
}

/// One part of a parsed RE2 rewrite string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewritePiece {
    Literal(String),
    Group(usize),
}

impl RegexRewrite {
    pub fn new(pattern: &str, substitution: &str) -> Result<Self, String> {
        let compiled = regex::Regex::new(pattern).map_err(|e| regex_error(&e))?;
        let pieces = parse_rewrite(substitution, compiled.captures_len() - 1)?;
        Ok(RegexRewrite { pattern: compiled, substitution: substitution.to_string(), pieces })
    }

    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    pub fn substitution(&self) -> &str {
        &self.substitution
    }

    /// Replace every non-overlapping match in `input` (RE2 `GlobalReplace`): an empty
    /// match right where the previous match ended is skipped.
    pub fn replace_all(&self, input: &str) -> String {
        let mut out = String::with_capacity(input.len() + self.substitution.len());
        let mut last = 0;
        for caps in self.pattern.captures_iter(input) {
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&input[last..m.start()]);
            for piece in &self.pieces {
                match piece {
                    RewritePiece::Literal(s) => out.push_str(s),
                    RewritePiece::Group(g) => {
                        if let Some(c) = caps.get(*g) {
                            out.push_str(c.as_str());
                        }
                    }
                }
            }
            last = m.end();
        }
        out.push_str(&input[last..]);
        out
    }
}

impl PartialEq for RegexRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.substitution == other.substitution
    }
}

/// Parse an RE2 rewrite string, checking group references against the pattern.
fn parse_rewrite(s: &str, groups: usize) -> Result<Vec<RewritePiece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            lit.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => lit.push('\\'),
            Some(n @ '0'..='9') => {
                let g = n as usize - '0' as usize;
                if g > groups {
                    return Err(format!(
                        "substitution `{s}` refers to group \\{g} but the pattern has {groups} capture group(s)"
                    ));
                }
                if !lit.is_empty() {
                    pieces.push(RewritePiece::Literal(std::mem::take(&mut lit)));
                }
                pieces.push(RewritePiece::Group(g));
            }
            _ => return Err(format!("invalid substitution `{s}`: `\\` must be followed by a digit or `\\`")),
        }
    }
    if !lit.is_empty() {
        pieces.push(RewritePiece::Literal(lit));
    }
    Ok(pieces)
}

impl Decode for RegexRewrite {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let pattern = match f.take("pattern") {
            Some(n) => decode_regex_pattern(d, n, &f.field_path("pattern")),
            None => {
                d.error(ErrorKind::Missing, &f.field_path("pattern"), f.line(), "required field is missing");
                None
            }
        };
        let substitution: String = f.or(d, "substitution", String::new());
        let line = f.line();
        f.finish(d);
        let (pattern, _) = pattern?;
        match RegexRewrite::new(&pattern, &substitution) {
            Ok(r) => Some(r),
            Err(e) => {
                d.error(ErrorKind::Invalid, path, line, e);
                None
            }
        }
    }
}

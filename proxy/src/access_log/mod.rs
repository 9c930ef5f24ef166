//! HTTP access logs (`HttpConnectionManager.access_log`): one record per finished
//! request, formatted with Envoy's substitution commands, filtered by the logger's
//! `filter`, and handed to the worker's [`AccessLogBuffer`].
//!
//! Text formats print `-` for a command with no value (Envoy's access log rule; the
//! header formatters print nothing); `omit_empty_values` prints nothing instead. JSON
//! formats print one object per line: a value that is a single numeric command is a
//! number, a single command with no value is `null` (or left out with
//! `omit_empty_values`), anything else a string. Formats are parsed at load; logging a
//! request walks the parsed pieces and appends to a reused buffer.

pub mod sink;

use std::sync::Arc;

use sluice_config::access_log::{AccessLog, AccessLogFilter, ComparisonFilter, JsonValue, LogFormat};
use sluice_config::route::formatter::{FormatPiece, FormatString};

use crate::http::response_flags::ResponseFlags;
use crate::router::formatter::{write_command, FormatContext};
use crate::router::route_match::request_header_value;
use crate::runtime::Snapshot;

pub use sink::{AccessLogBuffer, Sink};

/// This machine's host name (`%HOSTNAME%`), read once.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
    })
}

/// One compiled logger.
#[derive(Debug)]
pub struct AccessLogger {
    filter: Option<Filter>,
    format: LogFormat,
    omit_empty: bool,
    sink: Arc<Sink>,
}

/// An access log filter with its flag names resolved.
#[derive(Debug)]
enum Filter {
    Config(AccessLogFilter),
    /// `response_flag_filter`: the flags sluice can set (`None`: any flag).
    Flags(Option<ResponseFlags>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    fn new(f: &AccessLogFilter) -> Filter {
        match f {
            AccessLogFilter::ResponseFlag(names) if names.is_empty() => Filter::Flags(None),
            AccessLogFilter::ResponseFlag(names) => {
                let mut set = ResponseFlags::NONE;
                for n in names {
                    if let Some(flag) = ResponseFlags::from_short(n) {
                        set.set(flag);
                    }
                }
                Filter::Flags(Some(set))
            }
            AccessLogFilter::And(v) => Filter::And(v.iter().map(Filter::new).collect()),
            AccessLogFilter::Or(v) => Filter::Or(v.iter().map(Filter::new).collect()),
            other => Filter::Config(other.clone()),
        }
    }

    fn accepts(&self, cx: &FormatContext<'_>, runtime: &Snapshot) -> bool {
        let info = cx.info;
        // Envoy's `ComparisonFilter::compareAgainstValue`: the runtime's integer at
        // `runtime_key`, else `default_value`.
        let compare = |cmp: &ComparisonFilter, v: u64| {
            cmp.compare_with(v, runtime.get_integer(&cmp.runtime_key, u64::from(cmp.value)))
        };
        match self {
            Filter::Flags(None) => !info.response_flags.is_empty(),
            Filter::Flags(Some(set)) => info.response_flags.intersects(*set),
            Filter::And(v) => v.iter().all(|f| f.accepts(cx, runtime)),
            Filter::Or(v) => v.iter().any(|f| f.accepts(cx, runtime)),
            Filter::Config(c) => match c {
                AccessLogFilter::StatusCode(cmp) => compare(cmp, u64::from(info.response_code.unwrap_or(0))),
                AccessLogFilter::Duration(cmp) => {
                    compare(cmp, info.duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                }
                AccessLogFilter::NotHealthCheck => true,
                AccessLogFilter::Header(m) => {
                    let value = cx.request.and_then(|r| request_header_value(r, &m.name));
                    m.matches(value.as_deref())
                }
                // Resolved in `Filter::new`.
                AccessLogFilter::ResponseFlag(_) | AccessLogFilter::And(_) | AccessLogFilter::Or(_) => true,
            },
        }
    }
}

impl AccessLogger {
    /// Compile a logger; opening its file may fail (a config error).
    pub fn new(c: &AccessLog) -> Result<AccessLogger, String> {
        Ok(AccessLogger {
            filter: c.filter.as_ref().map(Filter::new),
            format: c.format.clone(),
            omit_empty: c.omit_empty_values,
            sink: Sink::open(&c.sink)?,
        })
    }

    /// Log one finished request into the worker's buffer (if the filter accepts it).
    pub(crate) fn log(&self, cx: &FormatContext<'_>, buf: &mut AccessLogBuffer, runtime: &Snapshot) {
        if let Some(f) = &self.filter {
            if !f.accepts(cx, runtime) {
                return;
            }
        }
        let out = buf.for_sink(&self.sink);
        match &self.format {
            LogFormat::Text(f) => text(f, cx, self.omit_empty, out),
            LogFormat::Json(fields) => {
                json_object(fields, cx, self.omit_empty, out);
                out.push(b'\n');
            }
        }
    }
}

/// A text template, `-` for commands with no value (nothing with `omit`).
fn text(f: &FormatString, cx: &FormatContext<'_>, omit: bool, out: &mut Vec<u8>) {
    for piece in &f.pieces {
        match piece {
            FormatPiece::Literal(s) => out.extend_from_slice(s.as_bytes()),
            FormatPiece::Command { command, max_len } => {
                let start = out.len();
                if !write_command(command, cx, out) && !omit {
                    out.push(b'-');
                }
                if let Some(max) = max_len {
                    out.truncate(start + (out.len() - start).min(*max));
                }
            }
        }
    }
}

fn json_object(fields: &[(String, JsonValue)], cx: &FormatContext<'_>, omit: bool, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    let mut scratch = Vec::new();
    for (key, value) in fields {
        let mark = out.len();
        if !first {
            out.push(b',');
        }
        json_string(key.as_bytes(), out);
        out.push(b':');
        let wrote = match value {
            JsonValue::Object(o) => {
                json_object(o, cx, omit, out);
                true
            }
            JsonValue::Format(f) => json_value(f, cx, omit, out, &mut scratch),
        };
        if wrote {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.push(b'}');
}

/// One JSON value; false when it is left out (`omit_empty_values`).
fn json_value(f: &FormatString, cx: &FormatContext<'_>, omit: bool, out: &mut Vec<u8>, tmp: &mut Vec<u8>) -> bool {
    if let [FormatPiece::Command { command, max_len: None }] = f.pieces.as_slice() {
        tmp.clear();
        if !write_command(command, cx, tmp) {
            if omit {
                return false;
            }
            out.extend_from_slice(b"null");
            return true;
        }
        if command.is_numeric() {
            out.extend_from_slice(tmp);
        } else {
            json_string(tmp, out);
        }
        return true;
    }
    tmp.clear();
    text(f, cx, omit, tmp);
    if tmp.is_empty() && omit {
        return false;
    }
    json_string(tmp, out);
    true
}

/// A JSON string literal; bytes that are not UTF-8 become U+FFFD.
fn json_string(s: &[u8], out: &mut Vec<u8>) {
    sluice_config::dump::write_str(&mut Bytes(out), &String::from_utf8_lossy(s));
}

/// `fmt::Write` onto a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! `config.accesslog.v3.AccessLog` on an HTTP connection manager: where a finished
//! request is logged (a file, stdout or stderr), in which format, and which requests
//! (the optional `filter`).
//!
//! Loggers are selected by `typed_config."@type"`:
//! `envoy.extensions.access_loggers.file.v3.FileAccessLog` (`path`, plus the
//! deprecated `format` / `json_format` or `log_format`) and
//! `envoy.extensions.access_loggers.stream.v3.StdoutAccessLog` / `StderrAccessLog`
//! (`log_format`). `log_format` is a `config.core.v3.SubstitutionFormatString`:
//! `text_format`, `text_format_source` (inline or from a file, read at load) or
//! `json_format`, with `omit_empty_values`. Without a format, Envoy's default text
//! format ([`DEFAULT_FORMAT`]) is used. Every `%COMMAND%` is parsed at load; an
//! unknown one is a config error, as in Envoy.

pub mod filter;

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::{Node, Value};
use crate::route::formatter::{parse, FormatString};
use crate::tls::DataSource;

pub use filter::{AccessLogFilter, ComparisonFilter, ComparisonOp, RESPONSE_FLAG_NAMES};

/// Envoy's default access log format (`ACCESS_LOG_FORMAT` in Envoy's substitution
/// formatter).
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

pub const FILE_TYPE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
pub const STDOUT_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
pub const STDERR_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogSink {
    /// Appended to this file (created if missing). `/dev/stdout` works too.
    File(String),
    Stdout,
    Stderr,
}

/// What one log line looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// A text template (its own newlines; the default format ends with one).
    Text(FormatString),
    /// One JSON object per line: each key's value is a template; a value that is a
    /// single numeric command (`%RESPONSE_CODE%`, `%BYTES_SENT%`, ...) is a number.
    /// Nested objects nest.
    Json(Vec<(String, JsonValue)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonValue {
    Format(FormatString),
    Object(Vec<(String, JsonValue)>),
}

/// `config.accesslog.v3.AccessLog`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub name: String,
    pub filter: Option<AccessLogFilter>,
    pub sink: AccessLogSink,
    pub format: LogFormat,
    /// `omit_empty_values`: an empty value prints nothing (text) or is left out
    /// (JSON) instead of `-` / `null`.
    pub omit_empty_values: bool,
    /// The format as written, for the config dump: `None` for the default format.
    pub format_source: Option<FormatSource>,
}

/// How the format was given (kept for `/config_dump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatSource {
    Text(String),
    Json,
}

impl Decode for AccessLog {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: String = f.or(d, "name", String::new());
        let filter: Option<AccessLogFilter> = f.opt(d, "filter");
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        f.unsupported(d, &["extension_filter"]);
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "an access log needs a typed_config with an `@type`");
            return None;
        };
        let mut t = typed_config(d, tc, &tc_path)?;
        let (sink, fmt) = match t.type_name.as_str() {
            FILE_TYPE => {
                let p: Option<String> = t.fields.req(d, "path");
                let legacy_text: Option<String> = t.fields.opt(d, "format");
                let legacy_json = t.fields.take("json_format");
                let legacy_json_path = t.fields.field_path("json_format");
                let log_format = t.fields.take("log_format");
                let lf_path = t.fields.field_path("log_format");
                t.fields.unsupported(d, &["typed_json_format"]);
                t.fields.finish(d);
                let p = p?;
                if p.is_empty() {
                    d.error(ErrorKind::Invalid, &format!("{tc_path}.path"), tc.line, "must not be empty");
                    return None;
                }
                let given = [legacy_text.is_some(), legacy_json.is_some(), log_format.is_some()];
                if given.iter().filter(|g| **g).count() > 1 {
                    d.invalid(tc, &tc_path, "set only one of `format`, `json_format` and `log_format`");
                    return None;
                }
                let fmt = if let Some(text) = legacy_text {
                    Some(text_format(d, &text, &format!("{tc_path}.format"), tc.line, false)?)
                } else if let Some(j) = legacy_json {
                    Some(json_format(d, j, &legacy_json_path, false)?)
                } else if let Some(lf) = log_format {
                    Some(substitution_format(d, lf, &lf_path)?)
                } else {
                    None
                };
                (AccessLogSink::File(p), fmt)
            }
            STDOUT_TYPE | STDERR_TYPE => {
                let log_format = t.fields.take("log_format");
                let lf_path = t.fields.field_path("log_format");
                t.fields.finish(d);
                let fmt = match log_format {
                    Some(lf) => Some(substitution_format(d, lf, &lf_path)?),
                    None => None,
                };
                let sink = if t.type_name == STDOUT_TYPE { AccessLogSink::Stdout } else { AccessLogSink::Stderr };
                (sink, fmt)
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!(
                        "unsupported access logger `{other}` (supported: {FILE_TYPE}, {STDOUT_TYPE}, {STDERR_TYPE})"
                    ),
                );
                return None;
            }
        };
        let (format, omit_empty_values, format_source) = match fmt {
            Some(p) => p,
            None => (LogFormat::Text(parse(DEFAULT_FORMAT).ok()?), false, None),
        };
        Some(AccessLog { name, filter, sink, format, omit_empty_values, format_source })
    }
}

type Parsed = (LogFormat, bool, Option<FormatSource>);

fn text_format(d: &mut Decoder, text: &str, path: &str, line: u32, omit: bool) -> Option<Parsed> {
    match parse(text) {
        Ok(f) => Some((LogFormat::Text(f), omit, Some(FormatSource::Text(text.to_string())))),
        Err(e) => {
            d.error(ErrorKind::Invalid, path, line, e.0);
            None
        }
    }
}

/// `config.core.v3.SubstitutionFormatString`.
fn substitution_format(d: &mut Decoder, node: &Node, path: &str) -> Option<Parsed> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let text: Option<String> = f.opt(d, "text_format");
    let source: Option<DataSource> = f.opt(d, "text_format_source");
    let json = f.take("json_format");
    let json_path = f.field_path("json_format");
    let omit = f.or(d, "omit_empty_values", false);
    f.ignored(d, &["content_type"]);
    f.empty_only(d, "json_format_options", "JSON format options (sorted keys) are not supported; remove them");
    f.unsupported(d, &["formatters"]);
    f.finish(d);
    match (text, source, json) {
        (Some(t), None, None) => text_format(d, &t, &format!("{path}.text_format"), line, omit),
        (None, Some(s), None) => {
            let sp = format!("{path}.text_format_source");
            let bytes = match s.read() {
                Ok(b) => b,
                Err(e) => {
                    d.error(ErrorKind::Invalid, &sp, line, e);
                    return None;
                }
            };
            let Ok(t) = String::from_utf8(bytes) else {
                d.error(ErrorKind::Invalid, &sp, line, "the format is not UTF-8");
                return None;
            };
            text_format(d, &t, &sp, line, omit)
        }
        (None, None, Some(j)) => json_format(d, j, &json_path, omit),
        (None, None, None) => {
            d.error(
                ErrorKind::Missing,
                path,
                line,
                "a log_format needs one of `text_format`, `text_format_source` or `json_format`",
            );
            None
        }
        _ => {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "set only one of `text_format`, `text_format_source` and `json_format`",
            );
            None
        }
    }
}

fn json_format(d: &mut Decoder, node: &Node, path: &str, omit: bool) -> Option<Parsed> {
    let fields = json_object(d, node, path)?;
    Some((LogFormat::Json(fields), omit, Some(FormatSource::Json)))
}

fn json_object(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<(String, JsonValue)>> {
    let Value::Map(entries) = &node.value else {
        d.invalid(node, path, format!("expected an object, found a {}", node.kind_name()));
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (k, v) in entries {
        let p = format!("{path}.{}", k.name);
        let value = match &v.value {
            Value::Scalar { text, .. } => match parse(text) {
                Ok(f) => JsonValue::Format(f),
                Err(e) => {
                    d.invalid(v, &p, e.0);
                    ok = false;
                    continue;
                }
            },
            Value::Map(_) => match json_object(d, v, &p) {
                Some(o) => JsonValue::Object(o),
                None => {
                    ok = false;
                    continue;
                }
            },
            _ => {
                d.invalid(v, &p, "json_format values must be strings or objects");
                ok = false;
                continue;
            }
        };
        out.push((k.name.clone(), value));
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests;

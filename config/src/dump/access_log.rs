//! Dump of HTTP access logs: the logger type, its path, filter and format as written
//! (`log_format.text_format` / `json_format`; nothing for Envoy's default format).

use super::{any, enum_name, list, Dump, Json};
use crate::access_log::{
    AccessLog, AccessLogFilter, AccessLogSink, ComparisonFilter, FormatSource, JsonValue, LogFormat, FILE_TYPE,
    STDERR_TYPE, STDOUT_TYPE,
};

fn json_value(fields: &[(String, JsonValue)]) -> Json {
    Json::Obj(
        fields
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    JsonValue::Format(f) => Json::Str(f.raw.clone()),
                    JsonValue::Object(o) => json_value(o),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

impl Dump for AccessLog {
    fn dump(&self) -> Json {
        let log_format = match (&self.format_source, &self.format) {
            (None, _) => None,
            (Some(FormatSource::Text(t)), _) => Some(Json::obj().with("text_format", t.as_str())),
            (Some(FormatSource::Json), LogFormat::Json(fields)) => {
                Some(Json::obj().with("json_format", json_value(fields)))
            }
            (Some(FormatSource::Json), LogFormat::Text(_)) => None,
        };
        let log_format = log_format.map(|f| f.with("omit_empty_values", self.omit_empty_values));
        let (type_name, message) = match &self.sink {
            AccessLogSink::File(path) => (FILE_TYPE, Json::obj().with("path", path.as_str())),
            AccessLogSink::Stdout => (STDOUT_TYPE, Json::obj()),
            AccessLogSink::Stderr => (STDERR_TYPE, Json::obj()),
        };
        let message = match log_format {
            Some(f) => message.with("log_format", f),
            None => message,
        };
        let j = Json::obj().with("name", &self.name);
        let j = match &self.filter {
            Some(f) => j.with("filter", f.dump()),
            None => j,
        };
        j.with("typed_config", any(type_name, message))
    }
}

fn comparison(c: &ComparisonFilter) -> Json {
    let mut value = Json::obj().with("default_value", c.value);
    if !c.runtime_key.is_empty() {
        value = value.with("runtime_key", c.runtime_key.as_str());
    }
    Json::obj().with("comparison", Json::obj().with("op", enum_name(c.op)).with("value", value))
}

impl Dump for AccessLogFilter {
    fn dump(&self) -> Json {
        match self {
            AccessLogFilter::StatusCode(c) => Json::obj().with("status_code_filter", comparison(c)),
            AccessLogFilter::Duration(c) => Json::obj().with("duration_filter", comparison(c)),
            AccessLogFilter::NotHealthCheck => Json::obj().with("not_health_check_filter", Json::obj()),
            AccessLogFilter::ResponseFlag(flags) => {
                Json::obj().with("response_flag_filter", Json::obj().with("flags", flags.clone()))
            }
            AccessLogFilter::Header(h) => Json::obj().with("header_filter", Json::obj().with("header", h.dump())),
            AccessLogFilter::And(v) => Json::obj().with("and_filter", Json::obj().with("filters", list(v))),
            AccessLogFilter::Or(v) => Json::obj().with("or_filter", Json::obj().with("filters", list(v))),
        }
    }
}

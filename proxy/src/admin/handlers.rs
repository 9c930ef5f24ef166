//! The admin endpoints, as Envoy names and formats them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::histogram::Snapshot as HistogramSnapshot;
use crate::stats::StatKind;

use super::{clusters, prometheus, AdminState};

/// An admin response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response { status, content_type: "text/plain; charset=UTF-8", body: body.into().into_bytes() }
    }

    pub fn json(body: String) -> Response {
        Response { status: 200, content_type: "application/json", body: body.into_bytes() }
    }

    pub fn encode(&self) -> Vec<u8> {
        let reason = crate::http::codec::reason_phrase(self.status);
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-cache, max-age=0\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// (path, mutating, help text)
const ENDPOINTS: &[(&str, bool, &str)] = &[
    ("/clusters", false, "upstream cluster status"),
    ("/config_dump", false, "dump current Envoy configs (experimental)"),
    ("/drain_listeners", true, "drain listeners (?graceful to drain connections too)"),
    ("/healthcheck/fail", true, "cause the server to fail health checks"),
    ("/healthcheck/ok", true, "cause the server to pass health checks"),
    ("/help", false, "print out list of admin commands"),
    ("/listeners", false, "print listener info"),
    ("/quitquitquit", true, "exit the server"),
    ("/ready", false, "print server state, return 200 if LIVE, otherwise return 503"),
    ("/runtime", false, "print runtime values"),
    (
        "/runtime_modify",
        true,
        "Adds or modifies runtime values as passed in query parameters. To delete a previously added key, use an empty string as the value. Note that deletion only applies to overrides added via this endpoint; values loaded from disk can be modified via override but not deleted. E.g. ?key1=value1&key2=value2...",
    ),
    ("/server_info", false, "print server version/status information"),
    ("/stats", false, "print server stats (?filter=REGEX, ?usedonly, ?format=json)"),
    ("/stats/prometheus", false, "print server stats in prometheus format"),
];

fn help() -> String {
    let mut s = String::from("admin commands are:\n");
    for (path, mutating, text) in ENDPOINTS {
        let m = if *mutating { " (POST)" } else { "" };
        let _ = writeln!(s, "  {path}{m}: {text}");
    }
    s
}

/// Whether `path` names an endpoint that changes the server's state (POST only).
pub fn mutates(path: &str) -> bool {
    ENDPOINTS.iter().any(|(p, mutating, _)| *mutating && *p == path)
}

/// Route one admin request.
pub fn handle(state: &AdminState, method: &str, target: &str) -> Response {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let params = parse_query(query);
    let Some((_, mutating, _)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path).copied().or(if path == "/" {
        Some(("/", false, ""))
    } else {
        None
    }) else {
        return Response::text(404, format!("invalid path. {}", help()));
    };
    if mutating && method != "POST" {
        return Response::text(405, format!("Method {method} not allowed, POST required.\n"));
    }
    match path {
        "/" | "/help" => Response::text(200, help()),
        "/ready" => {
            let s = state.state();
            Response::text(if s == "LIVE" { 200 } else { 503 }, format!("{s}\n"))
        }
        "/server_info" => server_info(state),
        "/stats" => stats(state, &params),
        "/stats/prometheus" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: prometheus::render(&state.stats).into_bytes(),
        },
        "/clusters" => {
            let snapshot = state.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if params.iter().any(|(k, v)| k == "format" && v == "json") {
                Response::json(clusters::render_json(&snapshot))
            } else {
                Response::text(200, clusters::render(&snapshot))
            }
        }
        "/listeners" => listeners(state, &params),
        "/config_dump" => {
            let dump = state.config_dump.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let eds = state.config_dump_eds.lock().unwrap_or_else(|e| e.into_inner()).clone();
            super::config_dump::render(dump, &eds, &params)
        }
        "/healthcheck/fail" => {
            state.health_check_failed.store(true, Ordering::Relaxed);
            state.control.health_check_failed.store(true, Ordering::Relaxed);
            Response::text(200, "OK\n")
        }
        "/healthcheck/ok" => {
            state.health_check_failed.store(false, Ordering::Relaxed);
            state.control.health_check_failed.store(false, Ordering::Relaxed);
            Response::text(200, "OK\n")
        }
        "/drain_listeners" => {
            let graceful = params.iter().any(|(k, _)| k == "graceful");
            state.control.drain_listeners(graceful);
            Response::text(200, "OK\n")
        }
        "/runtime" => super::runtime::show(state),
        "/runtime_modify" => super::runtime::modify(state, &params),
        "/quitquitquit" => {
            state.quit.store(true, Ordering::Relaxed);
            Response::text(200, "OK\n")
        }
        _ => Response::text(404, format!("invalid path. {}", help())),
    }
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    sluice_config::dump::write_str(&mut out, s);
    out
}

fn server_info(state: &AdminState) -> Response {
    let uptime = state.started.elapsed().as_secs();
    let body = format!(
        "{{\n \"version\": {},\n \"state\": {},\n \"hot_restart_version\": \"disabled\",\n \"command_line_options\": {{\n  \"concurrency\": {},\n  \"config_path\": {},\n  \"mode\": \"Serve\"\n }},\n \"uptime_current_epoch\": \"{uptime}s\",\n \"uptime_all_epochs\": \"{uptime}s\",\n \"node\": {{}}\n}}\n",
        json_str(&format!("sluice/{}", env!("CARGO_PKG_VERSION"))),
        json_str(state.state()),
        state.concurrency,
        json_str(&state.config_path),
    );
    Response::json(body)
}

fn stats(state: &AdminState, params: &[(String, String)]) -> Response {
    let filter = match params.iter().find(|(k, _)| k == "filter") {
        Some((_, re)) => match regex::Regex::new(re) {
            Ok(r) => Some(r),
            Err(e) => return Response::text(400, format!("Invalid regex: {e}\n")),
        },
        None => None,
    };
    let used_only = params.iter().any(|(k, _)| k == "usedonly");
    let json = params.iter().any(|(k, v)| k == "format" && v == "json");
    let keep = |name: &str| filter.as_ref().is_none_or(|r| r.is_match(name));
    let values: Vec<(String, StatKind, i64)> =
        state.stats.collect().into_iter().filter(|(n, _, v)| keep(n) && (!used_only || *v != 0)).collect();
    let histograms: Vec<(String, HistogramSnapshot)> = state
        .stats
        .collect_histograms()
        .into_iter()
        .filter(|(n, h)| keep(n) && (!used_only || h.count() > 0))
        .collect();
    if json {
        let mut s = String::from("{\"stats\":[");
        for (i, (n, _, v)) in values.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{{\"name\":{},\"value\":{v}}}", json_str(n));
        }
        if !histograms.is_empty() {
            if !values.is_empty() {
                s.push(',');
            }
            s.push_str(
                "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],\"computed_quantiles\":[",
            );
            for (i, (n, h)) in histograms.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{{\"name\":{},\"values\":[", json_str(n));
                for (j, q) in QUANTILES.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    match h.quantile(*q) {
                        Some(v) => {
                            let _ = write!(s, "{{\"interval\":null,\"cumulative\":{v}}}");
                        }
                        None => s.push_str("{\"interval\":null,\"cumulative\":null}"),
                    }
                }
                s.push_str("]}");
            }
            s.push_str("]}}");
        }
        s.push_str("]}\n");
        return Response::json(s);
    }
    let mut lines: Vec<(String, String)> = values.into_iter().map(|(n, _, v)| (n, v.to_string())).collect();
    for (n, h) in histograms {
        lines.push((n, histogram_text(&h)));
    }
    lines.sort();
    let mut s = String::new();
    for (n, v) in lines {
        let _ = writeln!(s, "{n}: {v}");
    }
    Response::text(200, s)
}

const QUANTILES: [f64; 10] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0];
const QUANTILE_NAMES: [&str; 10] = ["P0", "P25", "P50", "P75", "P90", "P95", "P99", "P99.5", "P99.9", "P100"];

/// Envoy's text form: `P0(interval,cumulative) P25(...) ...`; sluice keeps cumulative
/// values only, so the interval is `nan` as for a histogram with no recent samples.
fn histogram_text(h: &HistogramSnapshot) -> String {
    if h.count() == 0 {
        return "No recorded values".into();
    }
    let mut s = String::new();
    for (i, q) in QUANTILES.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let v = h.quantile(*q).unwrap_or(f64::NAN);
        let _ = write!(s, "{}(nan,{})", QUANTILE_NAMES[i], fmt_num(v));
    }
    s
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn listeners(state: &AdminState, params: &[(String, String)]) -> Response {
    let snapshot = state.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if params.iter().any(|(k, v)| k == "format" && v == "json") {
        let mut s = String::from("{\"listener_statuses\":[");
        for (i, l) in snapshot.listeners.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"name\":{},\"local_address\":{{\"socket_address\":{{\"address\":{},\"port_value\":{}}}}}}}",
                json_str(&l.name),
                json_str(&l.address.ip().to_string()),
                l.address.port()
            );
        }
        s.push_str("]}\n");
        return Response::json(s);
    }
    let mut s = String::new();
    for l in &snapshot.listeners {
        let _ = writeln!(s, "{}::{}", l.name, l.address);
    }
    Response::text(200, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_json_helpers() {
        assert_eq!(
            parse_query("filter=http%5C..*&usedonly"),
            vec![("filter".into(), "http\\..*".into()), ("usedonly".into(), String::new())]
        );
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(2.5), "2.5");
    }
}

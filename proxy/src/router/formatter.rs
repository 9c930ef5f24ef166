//! Evaluating the `%COMMAND%` header-value templates parsed at load
//! (`sluice_config::route::FormatString`) against one stream.
//!
//! Everything a command can print comes from [`StreamInfo`] (addresses, protocol,
//! start time — time is a parameter, never read here) or from the request/response
//! heads. A command with nothing to print yields the empty string, as Envoy's header
//! formatter does. Literal templates are borrowed from the config, never copied.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_config::metadata::{Metadata, Value};
use sluice_config::route::{Command, FormatPiece, FormatString, GrpcStatusFormat, TimeFormat, TimeItem};

use crate::http::response_flags::ResponseFlags;
use crate::http::{RequestHead, ResponseHead, Version};

use super::route_match::{request_header_first, response_header_first};

/// What the formatters may print about a stream (Envoy's `StreamInfo`, the part the
/// header formatters read). Built by the connection manager per request.
#[derive(Debug, Clone, Copy)]
pub struct StreamInfo<'a> {
    /// When the request's first byte arrived.
    pub start_time: SystemTime,
    pub protocol: Option<Version>,
    /// The client as Envoy sees it (after x-forwarded-for processing).
    pub downstream_remote: Option<SocketAddr>,
    /// The peer of the TCP connection.
    pub downstream_direct_remote: Option<SocketAddr>,
    /// The local address (the original destination when restored).
    pub downstream_local: Option<SocketAddr>,
    /// The upstream host, once chosen (response headers).
    pub upstream_remote: Option<SocketAddr>,
    /// Overrides the matched route's cluster for `%UPSTREAM_CLUSTER%`.
    pub upstream_cluster: Option<&'a str>,
    /// SNI of the downstream TLS connection.
    pub requested_server_name: Option<&'a str>,
    /// The response status, once known.
    pub response_code: Option<u16>,
    /// Why the response is what it is (access logs).
    pub response_flags: ResponseFlags,
    /// Request body bytes read from downstream.
    pub bytes_received: u64,
    /// Response body bytes written downstream.
    pub bytes_sent: u64,
    /// First request byte to last response byte, once the stream ended.
    pub duration: Option<Duration>,
    /// Upstream tries made (0: none).
    pub attempt_count: u32,
    /// This machine's host name (`%HOSTNAME%`).
    pub hostname: &'a str,
    /// The stream's dynamic metadata (access logs).
    pub dynamic_metadata: Option<&'a Metadata>,
    /// The response's `grpc-status` (trailers, else headers), when it had one.
    pub grpc_status: Option<u8>,
}

impl<'a> StreamInfo<'a> {
    /// A stream that started at `start_time`, with nothing else known yet.
    pub fn new(start_time: SystemTime) -> StreamInfo<'a> {
        StreamInfo {
            start_time,
            protocol: None,
            downstream_remote: None,
            downstream_direct_remote: None,
            downstream_local: None,
            upstream_remote: None,
            upstream_cluster: None,
            requested_server_name: None,
            response_code: None,
            response_flags: ResponseFlags::NONE,
            bytes_received: 0,
            bytes_sent: 0,
            duration: None,
            attempt_count: 0,
            hostname: "",
            dynamic_metadata: None,
            grpc_status: None,
        }
    }
}

/// Everything one evaluation can read.
pub(crate) struct FormatContext<'a> {
    pub info: &'a StreamInfo<'a>,
    pub request: Option<&'a RequestHead>,
    pub response: Option<&'a ResponseHead>,
    pub route_name: &'a str,
    pub cluster: Option<&'a str>,
}

/// Format `f`; a literal template is borrowed, not copied.
pub(crate) fn format<'t>(f: &'t FormatString, cx: &FormatContext<'_>) -> Cow<'t, [u8]> {
    if let Some(lit) = f.as_literal() {
        return Cow::Borrowed(lit.as_bytes());
    }
    let mut out = Vec::with_capacity(f.raw.len() + 16);
    for piece in &f.pieces {
        match piece {
            FormatPiece::Literal(s) => out.extend_from_slice(s.as_bytes()),
            FormatPiece::Command { command, max_len } => {
                let start = out.len();
                command_value(command, cx, &mut out);
                if let Some(max) = max_len {
                    out.truncate(start + (out.len() - start).min(*max));
                }
            }
        }
    }
    Cow::Owned(out)
}

fn push_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

/// Print command `c` onto `out`; false when it had nothing to print.
pub(crate) fn write_command(c: &Command, cx: &FormatContext<'_>, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    command_value(c, cx, out);
    out.len() > start
}

fn command_value(c: &Command, cx: &FormatContext<'_>, out: &mut Vec<u8>) {
    let info = cx.info;
    let addr = |out: &mut Vec<u8>, a: Option<SocketAddr>| {
        if let Some(a) = a {
            push_display(out, a);
        }
    };
    let ip = |out: &mut Vec<u8>, a: Option<SocketAddr>| {
        if let Some(a) = a {
            push_display(out, a.ip());
        }
    };
    let port = |out: &mut Vec<u8>, a: Option<SocketAddr>| {
        if let Some(a) = a {
            push_display(out, a.port());
        }
    };
    match c {
        Command::DownstreamRemoteAddress => addr(out, info.downstream_remote),
        Command::DownstreamRemoteAddressWithoutPort => ip(out, info.downstream_remote),
        Command::DownstreamRemotePort => port(out, info.downstream_remote),
        Command::DownstreamDirectRemoteAddress => addr(out, info.downstream_direct_remote),
        Command::DownstreamDirectRemoteAddressWithoutPort => ip(out, info.downstream_direct_remote),
        Command::DownstreamDirectRemotePort => port(out, info.downstream_direct_remote),
        Command::DownstreamLocalAddress => addr(out, info.downstream_local),
        Command::DownstreamLocalAddressWithoutPort => ip(out, info.downstream_local),
        Command::DownstreamLocalPort => port(out, info.downstream_local),
        Command::UpstreamRemoteAddress => addr(out, info.upstream_remote),
        Command::UpstreamRemoteAddressWithoutPort => ip(out, info.upstream_remote),
        Command::UpstreamRemotePort => port(out, info.upstream_remote),
        Command::UpstreamCluster => {
            if let Some(c) = info.upstream_cluster.or(cx.cluster) {
                out.extend_from_slice(c.as_bytes());
            }
        }
        Command::Protocol => {
            if let Some(v) = info.protocol {
                out.extend_from_slice(protocol_name(v).as_bytes());
            }
        }
        Command::RequestedServerName => {
            if let Some(s) = info.requested_server_name {
                out.extend_from_slice(s.as_bytes());
            }
        }
        Command::RouteName => out.extend_from_slice(cx.route_name.as_bytes()),
        Command::ResponseCode => push_display(out, info.response_code.unwrap_or(0)),
        Command::ResponseFlags => {
            if !info.response_flags.is_empty() {
                info.response_flags.write_bytes(out);
            }
        }
        Command::BytesReceived => push_display(out, info.bytes_received),
        Command::BytesSent => push_display(out, info.bytes_sent),
        Command::Duration => {
            if let Some(d) = info.duration {
                push_display(out, d.as_millis());
            }
        }
        Command::UpstreamHost => addr(out, info.upstream_remote),
        Command::UpstreamRequestAttemptCount => push_display(out, info.attempt_count),
        Command::Hostname => out.extend_from_slice(info.hostname.as_bytes()),
        Command::StartTime(f) => format_time(f, info.start_time, out),
        Command::DynamicMetadata { namespace, path } => {
            let Some(md) = info.dynamic_metadata else { return };
            if path.is_empty() {
                if let Some(fields) = md.filter_metadata.get(namespace) {
                    out.extend_from_slice(Value::Struct(fields.clone()).to_json().as_bytes());
                }
            } else if let Some(v) = md.value(namespace, path) {
                out.extend_from_slice(v.to_text().as_bytes());
            }
        }
        Command::Req { main, alt } => {
            if let Some(req) = cx.request {
                let v = request_header_first(req, main)
                    .or_else(|| alt.as_deref().and_then(|a| request_header_first(req, a)));
                if let Some(v) = v {
                    out.extend_from_slice(v);
                }
            }
        }
        Command::GrpcStatus(format) => {
            let code = info.grpc_status.or_else(|| info.response_code.map(crate::http::grpc::http_to_grpc_status));
            match (code, format) {
                (None, _) => {}
                (Some(c), GrpcStatusFormat::Number) => push_display(out, c),
                (Some(c), GrpcStatusFormat::CamelString) => {
                    out.extend_from_slice(crate::http::grpc::status_name(c, false).as_bytes())
                }
                (Some(c), GrpcStatusFormat::SnakeString) => {
                    out.extend_from_slice(crate::http::grpc::status_name(c, true).as_bytes())
                }
            }
        }
        Command::Resp { main, alt } => {
            if let Some(resp) = cx.response {
                let v = response_header_first(resp, main)
                    .or_else(|| alt.as_deref().and_then(|a| response_header_first(resp, a)));
                if let Some(v) = v {
                    out.extend_from_slice(v);
                }
            }
        }
    }
}

/// Envoy's protocol strings (`%PROTOCOL%`).
pub fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::Http09 => "HTTP/0.9",
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
        Version::Http2 => "HTTP/2",
    }
}

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    wday: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        yday,
        // 1970-01-01 was a Thursday.
        wday: (days + 4).rem_euclid(7) as u32,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Format `t` (UTC) with a parsed strftime-style format.
pub fn format_time(f: &TimeFormat, t: SystemTime, out: &mut Vec<u8>) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let nanos = d.subsec_nanos();
            if nanos == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - nanos)
            }
        }
    };
    let c = civil(secs);
    for item in &f.0 {
        match item {
            TimeItem::Literal(s) => out.extend_from_slice(s.as_bytes()),
            TimeItem::Year => push_display(out, format_args!("{:04}", c.year)),
            TimeItem::YearShort => push_display(out, format_args!("{:02}", c.year.rem_euclid(100))),
            TimeItem::Month => push_display(out, format_args!("{:02}", c.month)),
            TimeItem::Day => push_display(out, format_args!("{:02}", c.day)),
            TimeItem::DaySpace => push_display(out, format_args!("{:2}", c.day)),
            TimeItem::DayOfYear => push_display(out, format_args!("{:03}", c.yday)),
            TimeItem::Hour => push_display(out, format_args!("{:02}", c.hour)),
            TimeItem::Minute => push_display(out, format_args!("{:02}", c.minute)),
            TimeItem::Second => push_display(out, format_args!("{:02}", c.second)),
            TimeItem::SecondFrac { digits, trim } => {
                push_display(out, format_args!("{:02}", c.second));
                let mut frac = fraction(nanos, *digits);
                if *trim {
                    while frac.ends_with('0') {
                        frac.pop();
                    }
                }
                if !frac.is_empty() {
                    out.push(b'.');
                    out.extend_from_slice(frac.as_bytes());
                }
            }
            TimeItem::Frac(digits) => out.extend_from_slice(fraction(nanos, *digits).as_bytes()),
            TimeItem::Epoch => push_display(out, secs),
            TimeItem::WeekdayShort => out.extend_from_slice(WEEKDAYS[c.wday as usize].as_bytes()),
            TimeItem::MonthShort => out.extend_from_slice(MONTHS[(c.month - 1) as usize].as_bytes()),
            TimeItem::Offset => out.extend_from_slice(b"+0000"),
            TimeItem::Zone => out.extend_from_slice(b"UTC"),
        }
    }
}

/// The first `digits` digits of the fraction of a second.
fn fraction(nanos: u32, digits: u8) -> String {
    let s = format!("{nanos:09}");
    s[..usize::from(digits.min(9))].to_string()
}

/// `t` as RFC 3339 in UTC with milliseconds (`2026-12-07T18:50:14.123Z`), as protobuf's
/// JSON mapping writes a `Timestamp`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let c = civil(d.as_secs() as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_config::route::formatter::{parse, parse_time_format};

    use super::*;

    fn time(f: &str, t: SystemTime) -> String {
        let mut out = Vec::new();
        format_time(&parse_time_format(f).unwrap(), t, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn start_time_formats() {
        // 2024-02-29T13:05:09.123456789Z, a Thursday, day 60 of a leap year.
        let t = UNIX_EPOCH + Duration::new(1_709_211_909, 123_456_789);
        assert_eq!(time("%Y-%m-%dT%H:%M:%E3SZ", t), "2024-02-29T13:05:09.123Z");
        assert_eq!(time("%s.%3f", t), "1709211909.123");
        assert_eq!(time("%s.%6f|%f", t), "1709211909.123456|123456789");
        assert_eq!(time("%a %b %e %j %y %T %F %z %Z %%", t), "Thu Feb 29 060 24 13:05:09 2024-02-29 +0000 UTC %");
        assert_eq!(time("%E*S", UNIX_EPOCH + Duration::from_millis(1500)), "01.5");
        assert_eq!(time("%E*S", UNIX_EPOCH + Duration::from_secs(2)), "02");
        assert_eq!(time("%Y-%m-%d %H:%M:%S", UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(time("%Y-%m-%d", UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29");
    }

    #[test]
    fn commands() {
        let info = StreamInfo {
            protocol: Some(Version::Http11),
            downstream_remote: Some("10.0.0.1:5555".parse().unwrap()),
            downstream_local: Some("[::1]:80".parse().unwrap()),
            ..StreamInfo::new(UNIX_EPOCH)
        };
        let mut req =
            RequestHead { method: "GET".into(), authority: "a.com".into(), path: "/p".into(), ..Default::default() };
        req.headers.append(b"x-id", b"abc");
        let cx =
            FormatContext { info: &info, request: Some(&req), response: None, route_name: "r1", cluster: Some("c1") };
        let f = |s: &str| String::from_utf8(format(&parse(s).unwrap(), &cx).into_owned()).unwrap();
        assert_eq!(f("%DOWNSTREAM_REMOTE_ADDRESS%"), "10.0.0.1:5555");
        assert_eq!(f("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%:%DOWNSTREAM_REMOTE_PORT%"), "10.0.0.1:5555");
        assert_eq!(f("%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"), "[::1]:80 ::1");
        assert_eq!(f("%UPSTREAM_REMOTE_ADDRESS%"), "");
        assert_eq!(f("%PROTOCOL% %ROUTE_NAME% %UPSTREAM_CLUSTER% %RESPONSE_CODE%"), "HTTP/1.1 r1 c1 0");
        assert_eq!(f("%REQ(X-ID)% %REQ(:authority)% %REQ(missing?x-id)% %REQ(:path):1%"), "abc a.com abc /");
        assert_eq!(f("%RESP(x)%"), "");
        assert_eq!(f("100%% %START_TIME(%Y)%"), "100% 1970");
        assert!(matches!(format(&parse("lit").unwrap(), &cx), Cow::Borrowed(b"lit")));
    }
}

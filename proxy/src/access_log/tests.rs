use std::time::{Duration, UNIX_EPOCH};

use sluice_config::access_log::{AccessLogSink, ComparisonFilter, ComparisonOp, DEFAULT_FORMAT};
use sluice_config::route::formatter::parse;

use super::*;
use crate::http::{RequestHead, ResponseHead, Version};
use crate::router::StreamInfo;

fn logger(format: LogFormat, omit: bool, filter: Option<AccessLogFilter>) -> AccessLogger {
    let c = AccessLog {
        name: String::new(),
        filter,
        sink: AccessLogSink::Stderr,
        format,
        omit_empty_values: omit,
        format_source: None,
    };
    AccessLogger::new(&c).unwrap()
}

fn render(l: &AccessLogger, cx: &FormatContext<'_>) -> String {
    let mut buf = AccessLogBuffer::default();
    l.log(cx, &mut buf, &crate::runtime::Snapshot::default());
    let out = buf.for_sink(&l.sink).clone();
    String::from_utf8(out).unwrap()
}

fn request() -> RequestHead {
    let mut req = RequestHead {
        method: "GET".into(),
        authority: "a.example".into(),
        path: "/p?q=1".into(),
        version: Some(Version::Http11),
        ..Default::default()
    };
    req.headers.append(b"user-agent", b"curl/8");
    req.headers.append(b"x-request-id", b"rid-1");
    req
}

fn info() -> StreamInfo<'static> {
    let mut flags = ResponseFlags::NONE;
    flags.set(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
    flags.set(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
    StreamInfo {
        protocol: Some(Version::Http11),
        response_code: Some(503),
        response_flags: flags,
        bytes_received: 12,
        bytes_sent: 91,
        duration: Some(Duration::from_micros(7_900)),
        upstream_remote: Some("127.0.0.1:9000".parse().unwrap()),
        attempt_count: 2,
        ..StreamInfo::new(UNIX_EPOCH + Duration::from_millis(1_709_211_909_123))
    }
}

#[test]
fn default_format_is_envoys() {
    let (req, info) = (request(), info());
    let cx = FormatContext { info: &info, request: Some(&req), response: None, route_name: "", cluster: Some("web") };
    let l = logger(LogFormat::Text(parse(DEFAULT_FORMAT).unwrap()), false, None);
    assert_eq!(
        render(&l, &cx),
        "[2024-02-29T13:05:09.123Z] \"GET /p?q=1 HTTP/1.1\" 503 UF,URX 12 91 7 - \"-\" \"curl/8\" \"rid-1\" \"a.example\" \"127.0.0.1:9000\"\n"
    );
}

#[test]
fn empty_values_and_truncation() {
    let (req, info) = (request(), StreamInfo::new(UNIX_EPOCH));
    let cx = FormatContext { info: &info, request: Some(&req), response: None, route_name: "", cluster: None };
    let f = parse("%RESPONSE_FLAGS% %UPSTREAM_HOST% [%REQ(USER-AGENT):3%] %RESPONSE_CODE%\n").unwrap();
    assert_eq!(render(&logger(LogFormat::Text(f.clone()), false, None), &cx), "- - [cur] 0\n");
    assert_eq!(render(&logger(LogFormat::Text(f), true, None), &cx), "  [cur] 0\n");
}

#[test]
fn json_format_types_and_escapes() {
    let mut req = request();
    req.headers.append(b"x-odd", b"say \"hi\"\\\n");
    let info = info();
    let mut resp = ResponseHead { status: 503, ..Default::default() };
    resp.headers.append(b"x-up", b"1");
    let cx = FormatContext { info: &info, request: Some(&req), response: Some(&resp), route_name: "r", cluster: None };
    let json = |s: &str| JsonValue::Format(parse(s).unwrap());
    let fields = vec![
        ("code".to_string(), json("%RESPONSE_CODE%")),
        ("flags".to_string(), json("%RESPONSE_FLAGS%")),
        ("odd".to_string(), json("%REQ(X-ODD)%")),
        ("missing".to_string(), json("%REQ(X-NONE)%")),
        ("mixed".to_string(), json("%REQ(X-NONE)%/%RESP(X-UP)%")),
        ("up".to_string(), JsonValue::Object(vec![("attempts".to_string(), json("%UPSTREAM_REQUEST_ATTEMPT_COUNT%"))])),
    ];
    let l = logger(LogFormat::Json(fields.clone()), false, None);
    assert_eq!(
        render(&l, &cx),
        "{\"code\":503,\"flags\":\"UF,URX\",\"odd\":\"say \\\"hi\\\"\\\\\\n\",\"missing\":null,\"mixed\":\"-/1\",\"up\":{\"attempts\":2}}\n"
    );
    let l = logger(LogFormat::Json(fields), true, None);
    assert_eq!(
        render(&l, &cx),
        "{\"code\":503,\"flags\":\"UF,URX\",\"odd\":\"say \\\"hi\\\"\\\\\\n\",\"mixed\":\"/1\",\"up\":{\"attempts\":2}}\n"
    );
}

#[test]
fn filters_decide_what_is_logged() {
    let req = request();
    let mut ok = StreamInfo::new(UNIX_EPOCH);
    ok.response_code = Some(200);
    ok.duration = Some(Duration::from_millis(3));
    let failed = info();
    let f = LogFormat::Text(parse("%RESPONSE_CODE%\n").unwrap());
    let cmp = |op, value| ComparisonFilter { op, value, runtime_key: String::new() };
    let cases: Vec<(AccessLogFilter, bool, bool)> = vec![
        (AccessLogFilter::StatusCode(cmp(ComparisonOp::Ge, 500)), false, true),
        (AccessLogFilter::StatusCode(cmp(ComparisonOp::Ne, 200)), false, true),
        (AccessLogFilter::Duration(cmp(ComparisonOp::Le, 5)), true, false),
        (AccessLogFilter::ResponseFlag(vec![]), false, true),
        (AccessLogFilter::ResponseFlag(vec!["NR".into()]), false, false),
        (AccessLogFilter::ResponseFlag(vec!["NR".into(), "URX".into()]), false, true),
        (AccessLogFilter::NotHealthCheck, true, true),
        (
            AccessLogFilter::And(vec![
                AccessLogFilter::StatusCode(cmp(ComparisonOp::Eq, 503)),
                AccessLogFilter::Duration(cmp(ComparisonOp::Ge, 100)),
            ]),
            false,
            false,
        ),
        (
            AccessLogFilter::Or(vec![
                AccessLogFilter::StatusCode(cmp(ComparisonOp::Eq, 200)),
                AccessLogFilter::ResponseFlag(vec!["UF".into()]),
            ]),
            true,
            true,
        ),
    ];
    for (filter, logs_ok, logs_failed) in cases {
        let l = logger(f.clone(), false, Some(filter.clone()));
        for (info, expect) in [(&ok, logs_ok), (&failed, logs_failed)] {
            let cx = FormatContext { info, request: Some(&req), response: None, route_name: "", cluster: None };
            assert_eq!(!render(&l, &cx).is_empty(), expect, "{filter:?} on {:?}", info.response_code);
        }
    }
}

#[test]
fn comparison_filters_read_their_runtime_key() {
    let req = request();
    let mut ok = StreamInfo::new(UNIX_EPOCH);
    ok.response_code = Some(200);
    let cmp = ComparisonFilter { op: ComparisonOp::Ge, value: 400, runtime_key: "log.min_status".into() };
    let l = logger(LogFormat::Text(parse("%RESPONSE_CODE%\n").unwrap()), false, Some(AccessLogFilter::StatusCode(cmp)));
    let cx = FormatContext { info: &ok, request: Some(&req), response: None, route_name: "", cluster: None };
    let with = |v: &str| {
        let runtime = crate::runtime::Snapshot::new(vec![std::sync::Arc::new(crate::runtime::Layer {
            name: "l".into(),
            values: [("log.min_status".to_string(), sluice_config::runtime::Entry::parse(v))].into(),
        })]);
        let mut buf = AccessLogBuffer::default();
        l.log(&cx, &mut buf, &runtime);
        String::from_utf8(buf.for_sink(&l.sink).clone()).unwrap()
    };
    assert_eq!(render(&l, &cx), "", "default_value 400: a 200 is not logged");
    assert_eq!(with("200"), "200\n", "the runtime's 200 replaces default_value");
    assert_eq!(with("not a number"), "", "no integer reading: default_value");
}

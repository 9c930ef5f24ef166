//! The Lua filter's `httpCall()` beyond the request headers, end to end on both
//! backends (and over HTTP/2): from `envoy_on_response` (the response waits for the
//! answer, its body held unseen and handed to the script's `body()` afterwards, also
//! when it is bigger than one read), after `body()` in both flows (the body the
//! script took goes on, as it left it, once the answer came), the options-table form
//! and the asynchronous form (fire and forget: the answer is dropped, the request
//! still reaches the cluster after the stream ended). Dynamic metadata a script sets
//! after `body()` reaches the access log and the route picked again after the script
//! changed the headers, as before `body()`, and reads back after `body()`
//! (`dynamicMetadata():get`, and the route's `metadata()` as Envoy's metadata object:
//! `get()` and `pairs()`).

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const FILTERS: &str = r#"- name: envoy.filters.http.lua
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
    default_source_code:
      inline_string: |
        local function call_headers(path)
          return {[":method"] = "GET", [":path"] = path, [":authority"] = "auth"}
        end
        function envoy_on_request(h)
          local path = h:headers():get(":path")
          h:streamInfo():dynamicMetadata():set("lua.mode", "path", path)
          if path == "/req-after-body" then
            local b = h:body()
            local n = b:length()
            local hs, cbody = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/check", [":authority"] = "auth"}, b:getBytes(0, n), 5000)
            h:headers():add("x-call-status", hs[":status"])
            b:setBytes("checked:" .. b:getBytes(0, n))
            h:streamInfo():dynamicMetadata():set("lua.md", "after_body", "yes")
            -- Reads after body() and the call: the metadata just set, the route's.
            h:headers():add("x-md-read", h:streamInfo():dynamicMetadata():get("lua.md").after_body)
            local route_md = h:metadata()
            local n = 0
            for k, v in pairs(route_md) do n = n + 1 end
            h:headers():add("x-route-team", (route_md:get("team") or "none") .. "/" .. n)
          elseif path == "/md-after-body" then
            h:body()
            h:streamInfo():dynamicMetadata():set("lua.md", "after_body", "route")
            h:headers():add("x-rerouted", "1")
          elseif path == "/req-async" then
            h:httpCall("auth", call_headers("/fire-request"), "", 1000, true)
            h:headers():add("x-async", "sent")
          end
        end
        function envoy_on_response(h)
          local md = h:streamInfo():dynamicMetadata():get("lua.mode")
          local path = md and md.path or ""
          if path == "/resp-call" then
            local hs, body = h:httpCall("auth", call_headers("/from-response"), "", 5000)
            h:headers():add("x-resp-call-status", hs[":status"])
            h:headers():add("x-resp-call-origin", hs["x-origin"])
          elseif string.find(path, "/chunked/", 1, true) == 1 then
            -- The call answers late: the whole response body arrives meanwhile.
            local hs = h:httpCall("auth", call_headers("/delay/300/bytes/3"), "", {timeout_ms = 5000})
            local b = h:body()
            b:setBytes("len=" .. b:length() .. " call=" .. hs[":status"])
          elseif path == "/resp-body-then-call" then
            local b = h:body()
            local n = b:length()
            local hs, cbody = h:httpCall("auth", call_headers("/bytes/5"), "", 5000)
            b:setBytes("body=" .. n .. " callbody=" .. string.len(cbody))
            h:headers():add("x-after-body", hs[":status"])
            h:streamInfo():dynamicMetadata():set("lua.resp", "seen", tostring(n))
          elseif path == "/resp-async" then
            h:httpCall("auth", call_headers("/fire-response"), "", {asynchronous = true})
            h:headers():add("x-async", "sent")
          elseif path == "/resp-bad-option" then
            h:httpCall("auth", call_headers("/never"), "", {send_xff = false})
          end
        end
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match:
      prefix: "/md-after-body"
      dynamic_metadata:
      - filter: lua.md
        path: [{ key: after_body }]
        value: { string_match: { exact: route } }
    route: { cluster: meta }
  - match: { prefix: "/" }
    route: { cluster: web }
    metadata:
      filter_metadata:
        envoy.filters.http.lua: { team: blue, tier: 2 }
"#;

struct Setup {
    web: HttpOrigin,
    auth: HttpOrigin,
    meta: HttpOrigin,
    dir: tempfile::TempDir,
}

impl Setup {
    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("access.log")
    }
}

fn start(net: &Net) -> (Setup, HttpProxy<'_>) {
    let s = Setup {
        web: HttpOrigin::serve(net.listen(), "web"),
        auth: HttpOrigin::serve(net.listen(), "auth"),
        meta: HttpOrigin::serve(net.listen(), "meta"),
        dir: tempfile::tempdir().unwrap(),
    };
    let access_log = format!(
        "access_log:\n- name: file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format:\n      text_format_source:\n        inline_string: \"%REQ(:PATH)% %DYNAMIC_METADATA(lua.md:after_body)% %DYNAMIC_METADATA(lua.resp:seen)% %UPSTREAM_CLUSTER%\\n\"\n",
        s.log().to_string_lossy()
    );
    let (w, a, m) = ([s.web.addr], [s.auth.addr], [s.meta.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &w, extra: "" },
        ClusterAt { name: "auth", endpoints: &a, extra: "" },
        ClusterAt { name: "meta", endpoints: &m, extra: "" },
    ];
    let p = HttpProxy::start(net, VHOSTS, &clusters, &access_log, FILTERS, 1);
    (s, p)
}

/// The access log's lines once there are `n` (or what there is after 5 s).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `origin` saw a request for `path` within 5 s.
fn eventually_seen(origin: &HttpOrigin, path: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if origin.seen().iter().any(|s| s.path == path) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `envoy_on_response` calls a second cluster before the response goes on: the
/// client's response carries what the answer said, and the origin's body intact.
fn http_call_from_the_response_flow(backend: Backend) {
    let net = Net::new(backend);
    let (s, p) = start(&net);
    let mut c = p.client();
    let r = c.request("GET", "/resp-call", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-resp-call-status"), Some("200"));
    assert_eq!(r.header("x-resp-call-origin"), Some("auth"));
    assert!(r.text().starts_with("GET /resp-call"), "the echo, untouched: {}", r.text());
    assert_eq!(s.auth.seen().iter().filter(|x| x.path == "/from-response").count(), 1);
    // A response whose whole body (300 kB, chunked) comes while the call waits: the
    // script's body() afterwards sees all of it.
    let r = c.request("GET", "/chunked/300000", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "len=300000 call=200");
    assert!(s.auth.seen().iter().any(|x| x.path == "/delay/300/bytes/3"));
    // The connection still serves.
    assert_eq!(c.request("GET", "/plain", &[("host", "app")], b"").status, 200);
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
}

/// `httpCall()` after `body()` in both flows: the request body the script replaced
/// after the answer reaches the origin with its length, the call carried the
/// original; the response body is replaced after the call, with the head's edits.
fn http_call_after_body_in_both_flows(backend: Backend) {
    let net = Net::new(backend);
    let (s, p) = start(&net);
    let mut c = p.client();
    let r = c.request("POST", "/req-after-body", &[("host", "app")], b"hello");
    assert_eq!(r.status, 200);
    let call = s.auth.seen().into_iter().find(|x| x.path == "/check").expect("the call");
    assert_eq!(call.method, "POST");
    assert_eq!(call.body, b"hello", "the call's body");
    let seen = s.web.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.body, b"checked:hello");
    assert_eq!(last.header("content-length"), Some("13"));
    assert_eq!(last.header("x-call-status"), Some("200"));
    assert_eq!(last.header("x-md-read"), Some("yes"), "dynamicMetadata():get after body()");
    assert_eq!(last.header("x-route-team"), Some("blue/2"), "metadata():get and pairs()");
    // The response flow: body(), then a call, then setBytes.
    let r = c.request("GET", "/resp-body-then-call", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("body=") && text.ends_with(" callbody=5"), "{text}");
    assert_eq!(r.header("x-after-body"), Some("200"), "the head waited for the script");
    assert_eq!(r.header("content-length"), Some(text.len().to_string().as_str()));
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
    // Metadata set after body() (and after the calls) is in the access log.
    let n: usize = text["body=".len()..text.len() - " callbody=5".len()].parse().unwrap();
    let got = lines(&s.log(), 2);
    assert_eq!(got, ["/req-after-body yes - web".to_string(), format!("/resp-body-then-call - {n} web")]);
}

/// Metadata set after `body()`, with headers the script changed, picks the route
/// again: the route whose `match.dynamic_metadata` wants it takes the request.
fn metadata_after_body_reaches_the_route(backend: Backend) {
    let net = Net::new(backend);
    let (s, p) = start(&net);
    let mut c = p.client();
    let r = c.request("POST", "/md-after-body", &[("host", "app")], b"payload");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("meta"));
    assert_eq!(s.web.requests(), 0);
    let seen = s.meta.seen();
    assert_eq!(seen[0].body, b"payload");
    assert_eq!(seen[0].header("x-rerouted"), Some("1"));
    assert_eq!(lines(&s.log(), 1), ["/md-after-body route - meta"]);
}

/// The asynchronous form from either flow: the stream does not wait, and the
/// request reaches the cluster anyway. An option sluice does not have is a script
/// error (500 while the head is held, counted).
fn asynchronous_calls_and_options(backend: Backend) {
    let net = Net::new(backend);
    let (s, p) = start(&net);
    let mut c = p.client();
    let r = c.request("GET", "/req-async", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(s.web.seen().last().unwrap().header("x-async"), Some("sent"));
    let r = c.request("GET", "/resp-async", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-async"), Some("sent"));
    assert!(eventually_seen(&s.auth, "/fire-request"), "{:?}", s.auth.seen());
    assert!(eventually_seen(&s.auth, "/fire-response"), "{:?}", s.auth.seen());
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
    let mut c = p.client();
    let r = c.request("GET", "/resp-bad-option", &[("host", "app")], b"");
    assert_eq!(r.status, 500);
    assert_eq!(p.counter("http.ingress.lua.errors"), 1);
    assert!(!s.auth.seen().iter().any(|x| x.path == "/never"));
}

/// A request body that ends in trailers (HTTP/2): a script in `body()` resumes on the
/// trailers with the whole body and the trailers; the body it replaced and the trailers
/// it added reach the origin (the filter that holds the stream gets the trailers and
/// lets them go on with the body), also after an `httpCall()` made there.
const TRAILER_FILTERS: &str = r#"- name: envoy.filters.http.lua
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
    default_source_code:
      inline_string: |
        function envoy_on_request(h)
          local b = h:body()
          local t = h:trailers()
          b:setBytes(string.upper(b:getBytes(0, b:length())))
          if t ~= nil then
            t:add("x-lua-body-length", tostring(b:length()))
            t:add("x-lua-saw", t:get("x-client"))
            if h:headers():get(":path") == "/call" then
              local hs = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/check", [":authority"] = "auth"}, "", 5000)
              h:headers():add("x-call-status", hs[":status"])
            end
          end
        end
"#;

fn body_then_trailers_over_http2(backend: Backend) {
    use sluice_e2e::h2_client::H2Client;
    use sluice_e2e::h2_origin::H2Origin;
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let auth = HttpOrigin::serve(net.listen(), "auth");
    let (endpoints, a) = ([origin.addr], [auth.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &endpoints, extra: crate::grpc::H2_UPSTREAM },
        ClusterAt { name: "auth", endpoints: &a, extra: "" },
    ];
    let vhosts =
        "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let p = HttpProxy::start(&net, vhosts, &clusters, "", TRAILER_FILTERS, 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    for (i, path) in ["/plain", "/call"].into_iter().enumerate() {
        let r = c.request_with_trailers("POST", path, b"hello trailers", &[("x-client", "1")]).expect("response");
        assert_eq!(r.status, 200, "{path}");
        let seen = &origin.seen()[i];
        assert_eq!(seen.body, b"HELLO TRAILERS", "{path}");
        let trailers = &origin.trailers()[i];
        for want in [("x-client", "1"), ("x-lua-body-length", "14"), ("x-lua-saw", "1")] {
            assert!(trailers.contains(&(want.0.into(), want.1.into())), "{path}: {want:?} in {trailers:?}");
        }
    }
    assert_eq!(origin.seen()[1].header("x-call-status"), Some("200"), "the head waited for the call");
    assert_eq!(auth.requests(), 1);
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
}

on_both_backends!(
    body_then_trailers_over_http2,
    http_call_from_the_response_flow,
    http_call_after_body_in_both_flows,
    metadata_after_body_reaches_the_route,
    asynchronous_calls_and_options,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    http_call_from_the_response_flow,
    http_call_after_body_in_both_flows,
    metadata_after_body_reaches_the_route,
    asynchronous_calls_and_options,
);

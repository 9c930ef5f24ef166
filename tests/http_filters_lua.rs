//! The Lua filter end to end on both backends: a script adds, replaces and removes
//! request and response headers, reads and rewrites request and response bodies
//! (`body()`, `setBytes`, with the `content-length` following), answers locally with
//! `respond()`, calls a second cluster with `httpCall()`; a route disables the filter or
//! brings a script of its own (`source_code`, or `name` of a `source_codes` entry); a
//! script error, a runaway loop and a memory hog are answered 500 and counted in
//! `http.<prefix>.lua.errors`, and the worker keeps serving. `bodyChunks()` rewrites
//! streamed bodies both ways over HTTP/2 and `trailers()` adds to the response's. Envoy's Lua example
//! (tests/envoy_examples/lua) validates and behaves as its verify.sh says.

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::free_port;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::proxy::Proxy;

const FILTERS: &str = r#"- name: envoy.filters.http.lua
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
    default_source_code:
      inline_string: |
        function envoy_on_request(h)
          local path = h:headers():get(":path")
          h:headers():add("x-lua-added", "yes")
          h:headers():replace("x-replace", "new")
          h:headers():remove("x-remove")
          h:headers():add("x-proto", h:streamInfo():protocol())
          if path == "/body" then
            local b = h:body()
            b:setBytes("<" .. string.upper(b:getBytes(0, b:length())) .. ">")
            h:headers():add("x-seen-length", tostring(b:length()))
          elseif path == "/respond" then
            h:respond({[":status"] = "403", ["x-lua"] = "denied"}, "nope")
          elseif path == "/call" then
            local hs, body = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/check", [":authority"] = "auth"}, "", 5000)
            h:headers():add("x-call-status", hs[":status"])
            h:headers():add("x-call-origin", hs["x-origin"])
          elseif path == "/call-unknown" then
            h:httpCall("nope", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}, "", 1000)
          elseif path == "/error" then
            error("boom")
          elseif path == "/loop" then
            while true do end
          elseif path == "/memory" then
            local t = {}
            for i = 1, 100000000 do t[i] = string.rep("x", 1024) .. i end
          elseif path == "/rewrite-response" then
            h:streamInfo():dynamicMetadata():set("lua.test", "rewrite", "yes")
          end
          local n = 0
          for k, v in pairs(h:headers()) do n = n + 1 end
          h:headers():add("x-header-count", tostring(n))
        end
        function envoy_on_response(h)
          h:headers():add("x-resp-lua", "on")
          h:headers():replace("x-origin", "rewritten")
          local md = h:streamInfo():dynamicMetadata():get("lua.test")
          if md ~= nil and md.rewrite == "yes" then
            local b = h:body()
            b:setBytes("rewritten:" .. tostring(b:length()))
          end
        end
    source_codes:
      named.lua:
        inline_string: |
          function envoy_on_request(h)
            h:headers():add("x-named", "1")
          end
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/off" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.lua:
        "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
        disabled: true
  - match: { prefix: "/own" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.lua:
        "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
        source_code:
          inline_string: |
            function envoy_on_request(h)
              h:headers():add("x-own", "route")
            end
  - match: { prefix: "/named" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.lua:
        "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
        name: named.lua
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

struct Setup {
    origin: HttpOrigin,
    auth: HttpOrigin,
}

fn origins(net: &Net) -> Setup {
    Setup { origin: HttpOrigin::serve(net.listen(), "web"), auth: HttpOrigin::serve(net.listen(), "auth") }
}

fn start<'n>(net: &'n Net, s: &Setup) -> HttpProxy<'n> {
    let web = [s.origin.addr];
    let auth = [s.auth.addr];
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "auth", endpoints: &auth, extra: "" },
    ];
    HttpProxy::start(net, VHOSTS, &clusters, "", FILTERS, 1)
}

fn headers_change_on_request_and_response(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    let r = c.request("GET", "/plain", &[("host", "app"), ("x-replace", "old"), ("x-remove", "gone")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-resp-lua"), Some("on"));
    assert_eq!(r.header("x-origin"), Some("rewritten"), "replace() on the response");
    let seen = s.origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-lua-added"), Some("yes"));
    assert_eq!(last.header("x-replace"), Some("new"));
    assert_eq!(last.header("x-remove"), None);
    assert_eq!(last.header("x-proto"), Some("HTTP/1.1"));
    // pairs() walked the pseudo-headers and the request's headers.
    let n: usize = last.header("x-header-count").unwrap().parse().unwrap();
    assert!(n >= 8, "{n}");
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
}

fn bodies_are_read_and_rewritten(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    let r = c.request("POST", "/body", &[("host", "app")], b"hello lua");
    assert_eq!(r.status, 200);
    let seen = s.origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.body, b"<HELLO LUA>");
    assert_eq!(last.header("content-length"), Some("11"), "the length follows setBytes");
    assert_eq!(last.header("x-seen-length"), Some("11"), "headers still change after body()");
    // The response body, rewritten by envoy_on_response.
    let r = c.request("GET", "/rewrite-response", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("rewritten:"), "{text}");
    let len: usize = text["rewritten:".len()..].parse().unwrap();
    assert!(len > 20, "the script saw the echo's body: {len}");
    assert_eq!(r.header("x-resp-lua"), Some("on"));
    assert_eq!(r.header("content-length"), Some(text.len().to_string().as_str()));
}

fn respond_answers_locally(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    let r = c.request("GET", "/respond", &[("host", "app")], b"");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-lua"), Some("denied"));
    assert_eq!(r.text(), "nope");
    assert_eq!(s.origin.requests(), 0, "a local reply never reaches the origin");
    // The encoder side ran on the local reply too.
    assert_eq!(r.header("x-resp-lua"), Some("on"));
}

fn http_call_reaches_a_second_cluster(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    let r = c.request("GET", "/call", &[("host", "app")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(s.auth.requests(), 1);
    assert_eq!(s.auth.seen()[0].path, "/check");
    let seen = s.origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-call-status"), Some("200"));
    assert_eq!(last.header("x-call-origin"), Some("auth"));
    // A cluster that does not exist is a script error.
    let mut c = p.client();
    let r = c.request("GET", "/call-unknown", &[("host", "app")], b"");
    assert_eq!(r.status, 500);
    assert_eq!(p.counter("http.ingress.lua.errors"), 1);
}

fn routes_disable_or_replace_the_script(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    assert_eq!(c.request("GET", "/off", &[("host", "app")], b"").status, 200);
    assert_eq!(c.request("GET", "/own", &[("host", "app")], b"").status, 200);
    assert_eq!(c.request("GET", "/named", &[("host", "app")], b"").status, 200);
    let seen = s.origin.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("x-lua-added"), None, "disabled on /off");
    assert_eq!(seen[1].header("x-own"), Some("route"));
    assert_eq!(seen[1].header("x-lua-added"), None, "the route's source_code replaces the default");
    assert_eq!(seen[2].header("x-named"), Some("1"));
    assert_eq!(seen[2].header("x-lua-added"), None);
}

fn script_errors_answer_500_and_count(backend: Backend) {
    let net = Net::new(backend);
    let s = origins(&net);
    let p = start(&net, &s);
    let mut c = p.client();
    assert_eq!(c.request("GET", "/error", &[("host", "app")], b"").status, 500);
    assert_eq!(p.counter("http.ingress.lua.errors"), 1);
    let mut c = p.client();
    assert_eq!(c.request("GET", "/loop", &[("host", "app")], b"").status, 500, "the instruction budget");
    let mut c = p.client();
    assert_eq!(c.request("GET", "/memory", &[("host", "app")], b"").status, 500, "the memory limit");
    assert_eq!(p.counter("http.ingress.lua.errors"), 3);
    assert_eq!(s.origin.requests(), 0);
    // The worker and its Lua state still serve.
    let mut c = p.client();
    assert_eq!(c.request("GET", "/plain", &[("host", "app")], b"").status, 200);
    assert_eq!(s.origin.requests(), 1);
}

on_both_backends!(
    headers_change_on_request_and_response,
    bodies_are_read_and_rewritten,
    respond_answers_locally,
    http_call_reaches_a_second_cluster,
    routes_disable_or_replace_the_script,
    script_errors_answer_500_and_count,
    body_chunks_and_trailers_over_http2,
);

/// Scripts that stream: `bodyChunks()` rewrites each chunk as it passes and
/// `trailers()` then adds to the trailers, in both flows.
const STREAMING_FILTERS: &str = r#"- name: envoy.filters.http.lua
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
    default_source_code:
      inline_string: |
        function envoy_on_request(h)
          local n = 0
          for chunk in h:bodyChunks() do
            n = n + chunk:length()
            chunk:setBytes(string.upper(chunk:getBytes(0, chunk:length())))
          end
          local t = h:trailers()
          if t ~= nil then
            t:add("x-lua-request-bytes", tostring(n))
          end
        end
        function envoy_on_response(h)
          local parts = 0
          for chunk in h:bodyChunks() do
            parts = parts + 1
            chunk:setBytes("[" .. chunk:getBytes(0, chunk:length()) .. "]")
          end
          local t = h:trailers()
          if t ~= nil then
            t:add("x-lua-response-chunks", tostring(parts))
          end
        end
"#;

/// `bodyChunks()` and `trailers()` end to end over HTTP/2: the client's body reaches
/// the origin upper-cased chunk by chunk, its trailers beside it; the origin's body
/// comes back with each chunk the script saw bracketed, and the response trailers (which
/// end the script's `bodyChunks()` loop) carry the count of chunks next to
/// `grpc-status`. The request's trailers end the script's `bodyChunks()` loop too (the
/// last chunk is not the end), and the one it adds reaches the origin.
fn body_chunks_and_trailers_over_http2(backend: Backend) {
    use sluice_e2e::h2_client::H2Client;
    use sluice_e2e::h2_origin::H2Origin;
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: crate::grpc::H2_UPSTREAM }];
    let vhosts =
        "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let p = HttpProxy::start(&net, vhosts, &clusters, "", STREAMING_FILTERS, 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    let r =
        c.request_with_trailers("POST", "/grpc/0/pkg.Svc/Echo", b"hello lua", &[("x-client", "1")]).expect("response");
    assert_eq!(r.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(seen.body, b"HELLO LUA", "each request chunk rewritten");
    let trailers = origin.trailers();
    assert_eq!(trailers.len(), 1, "{trailers:?}");
    assert!(trailers[0].contains(&("x-client".into(), "1".into())), "{trailers:?}");
    assert!(trailers[0].contains(&("x-lua-request-bytes".into(), "9".into())), "{trailers:?}");
    let body = r.text();
    let chunks = body.matches('[').count();
    assert!(chunks >= 1 && body.starts_with('[') && body.ends_with(']'), "{body}");
    assert_eq!(body.replace(['[', ']'], ""), "HELLO LUA", "the echo, chunk by chunk");
    let t = r.trailers.expect("response trailers");
    assert_eq!(t.get("grpc-status").and_then(|v| v.to_str().ok()), Some("0"));
    assert_eq!(t.get("x-lua-response-chunks").and_then(|v| v.to_str().ok()), Some(chunks.to_string().as_str()));
    assert_eq!(p.counter("http.ingress.lua.errors"), 0);
}

/// A config whose script does not compile is refused at load with its path.
#[test]
fn a_script_that_does_not_compile_is_a_config_error() {
    let yaml = sluice_e2e::config::http_at(
        "127.0.0.1:1".parse().unwrap(),
        "- name: a\n  domains: [\"*\"]\n  routes: []\n",
        &[],
        "",
        "- name: envoy.filters.http.lua\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n    default_source_code: { inline_string: \"function envoy_on_request(h\" }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, out) = sluice_e2e::proxy::run(&["-c", path.to_str().unwrap(), "--mode", "validate"], None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("default_source_code"), "{out}");
}

/// The example's files, runnable here: its working directory holds `lib/mylibrary.lua`
/// as the example's image does; the listener and the web service are local.
fn lua_example(listen: u16, web: u16) -> (tempfile::TempDir, String) {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/lua");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::copy(src.join("mylibrary.lua"), dir.path().join("lib/mylibrary.lua")).unwrap();
    let text = std::fs::read_to_string(src.join("envoy.yaml")).unwrap();
    let text = text.replace("port_value: 8000", &format!("port_value: {listen}")).replace(
        "address: web_service\n                port_value: 8080",
        &format!("address: 127.0.0.1\n                port_value: {web}"),
    );
    (dir, text)
}

/// examples/lua: validates unchanged (from the image's working directory).
#[test]
fn envoy_lua_example_validates() {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/lua");
    let (dir, _) = lua_example(0, 0);
    let config = src.join("envoy.yaml");
    let (code, out) = sluice_e2e::proxy::run(&["-c", config.to_str().unwrap(), "--mode", "validate"], Some(dir.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
}

/// examples/lua verify.sh: the common script adds `foo: bar` to every request (the
/// echo service shows it), and `/multiple/lua/scripts` gets `header_key_1` from the
/// route's own script on the second filter.
#[test]
fn envoy_lua_example_behaves_as_its_verify_script() {
    let origin = HttpOrigin::start("web_service");
    let port = free_port();
    let (dir, yaml) = lua_example(port, origin.port());
    let cd = format!("cd '{}' && exec \"$0\" \"$@\"", dir.path().display());
    let _proxy = Proxy::start_wrapped(&["sh", "-c", &cd], &yaml, &[]);
    let r = sluice_e2e::http_client::get(port, "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("foo: bar"), "{}", r.text());
    assert_eq!(r.header("header_key_1"), None);
    let r = sluice_e2e::http_client::get(port, "/multiple/lua/scripts");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("header_key_1"), Some("header_value_1"));
    assert!(r.text().contains("foo: bar"), "{}", r.text());
}

//! Cross-site request protection for the admin endpoints that change the server's state.
//!
//! Envoy answers mutating endpoints (`/quitquitquit`, `/healthcheck/fail`, ...) only to
//! POST ("Method GET not allowed, POST required."). That alone does not stop a web page
//! in an operator's browser: a cross-origin `fetch` or `<form>` may POST without a CORS
//! preflight as long as its content type is "simple" (`text/plain`,
//! `application/x-www-form-urlencoded`, `multipart/form-data`). So a POST to a mutating
//! endpoint is also refused when
//! - it carries one of those content types (415), or
//! - its `Origin` is not this admin listener's own origin (`http://IP:PORT` of the
//!   address the connection reached, or `http://localhost:PORT` on a loopback address),
//!   which also stops a DNS-rebound page whose host name resolves to the admin (403), or
//! - its `Sec-Fetch-Site` says the browser sent it for another site (403).
//!
//! Tools that are not browsers (curl, scripts, load balancers) send none of these
//! headers and are not affected: `curl -X POST http://127.0.0.1:9901/quitquitquit`
//! works as with Envoy.

use std::net::SocketAddr;

use super::Response;

/// Content types a browser may send cross-origin without a preflight.
const SIMPLE_CONTENT_TYPES: [&str; 3] = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"];

/// Check a POST to a mutating endpoint; the refusal to send when it must not run.
pub fn check(headers: &[httparse::Header<'_>], local: SocketAddr) -> Result<(), Response> {
    for h in headers {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-type") {
            let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if SIMPLE_CONTENT_TYPES.contains(&media.as_str()) {
                return Err(Response::text(
                    415,
                    format!(
                        "content type {media} refused: a browser can send it cross-origin; \
                         mutating admin endpoints take a POST with no body or a non-form content type \
                         (e.g. application/json)\n"
                    ),
                ));
            }
        } else if h.name.eq_ignore_ascii_case("origin") {
            if !is_own_origin(value, local) {
                return Err(Response::text(
                    403,
                    format!(
                        "cross-origin request refused: Origin {value} is not this admin's origin (http://{})\n",
                        origin_host(local)
                    ),
                ));
            }
        } else if h.name.eq_ignore_ascii_case("sec-fetch-site")
            && !value.eq_ignore_ascii_case("same-origin")
            && !value.eq_ignore_ascii_case("none")
        {
            return Err(Response::text(403, format!("cross-site request refused (Sec-Fetch-Site: {value})\n")));
        }
    }
    Ok(())
}

/// `IP:PORT` as a URL authority (IPv6 in brackets).
fn origin_host(local: SocketAddr) -> String {
    let ip = local.ip().to_canonical();
    match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}:{}", local.port()),
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", local.port()),
    }
}

/// Whether `origin` names the admin listener the request reached.
fn is_own_origin(origin: &str, local: SocketAddr) -> bool {
    let origin = origin.to_ascii_lowercase();
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    if authority == origin_host(local) {
        return true;
    }
    local.ip().to_canonical().is_loopback() && authority == format!("localhost:{}", local.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(headers: &[(&'static str, &'static str)]) -> Result<(), u16> {
        let h: Vec<httparse::Header<'_>> =
            headers.iter().map(|(n, v)| httparse::Header { name: n, value: v.as_bytes() }).collect();
        check(&h, "127.0.0.1:9901".parse().unwrap()).map_err(|r| r.status)
    }

    #[test]
    fn tools_without_browser_headers_pass() {
        assert_eq!(run(&[]), Ok(()));
        assert_eq!(run(&[("content-type", "application/json")]), Ok(()));
        assert_eq!(run(&[("Origin", "http://127.0.0.1:9901"), ("Sec-Fetch-Site", "same-origin")]), Ok(()));
        assert_eq!(run(&[("origin", "http://LOCALHOST:9901")]), Ok(()));
    }

    #[test]
    fn browser_cross_origin_shapes_are_refused() {
        assert_eq!(run(&[("Content-Type", "text/plain;charset=UTF-8")]), Err(415));
        assert_eq!(run(&[("content-type", " Application/X-WWW-Form-Urlencoded")]), Err(415));
        assert_eq!(run(&[("content-type", "multipart/form-data; boundary=x")]), Err(415));
        assert_eq!(run(&[("origin", "http://evil.example")]), Err(403));
        assert_eq!(run(&[("origin", "http://evil.example:9901")]), Err(403), "DNS rebinding");
        assert_eq!(run(&[("origin", "null")]), Err(403));
        assert_eq!(run(&[("origin", "http://127.0.0.1:9902")]), Err(403), "another port is another origin");
        assert_eq!(run(&[("origin", "https://127.0.0.1:9901")]), Err(403));
        assert_eq!(run(&[("sec-fetch-site", "cross-site")]), Err(403));
    }

    #[test]
    fn ipv6_and_non_loopback_origins() {
        let v6: SocketAddr = "[::1]:9901".parse().unwrap();
        assert!(is_own_origin("http://[::1]:9901", v6));
        assert!(is_own_origin("http://localhost:9901", v6));
        let public: SocketAddr = "192.0.2.7:9901".parse().unwrap();
        assert!(is_own_origin("http://192.0.2.7:9901", public));
        assert!(!is_own_origin("http://localhost:9901", public));
    }
}

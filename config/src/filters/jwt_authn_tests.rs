//! `JwtAuthentication` and `PerRouteConfig`: what loads, what is rejected with its path.

use super::*;
use crate::hcm::{HttpFilter, HttpFilterKind};
use crate::node::parse;

fn decode(typed_config: &str) -> (Option<JwtAuthentication>, Decoder) {
    let yaml = format!(
        "name: jwt\ntyped_config:\n  '@type': type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n{typed_config}"
    );
    let n = parse(&yaml).unwrap();
    let mut d = Decoder::new();
    let f = d.decode::<HttpFilter>(&n, "f");
    let j = f.and_then(|f| match f.kind {
        HttpFilterKind::JwtAuthn(j) => Some(*j),
        _ => None,
    });
    (j, d)
}

fn errors(d: &Decoder) -> String {
    d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

const PROVIDERS: &str = "  providers:\n    a:\n      issuer: https://a.example\n      audiences: [x]\n      local_jwks: {inline_string: '{\"keys\":[]}'}\n      from_headers: [{name: X-Jwt, value_prefix: 'Token '}]\n      from_params: [jwt]\n      forward_payload_header: X-Payload\n      claim_to_headers: [{header_name: X-Sub, claim_name: sub}]\n      max_lifetime: 3600s\n    b:\n      local_jwks: {filename: /etc/jwks.json}\n";

#[test]
fn providers_rules_and_requirements_load() {
    let (j, d) = decode(&format!(
        "{PROVIDERS}  rules:\n  - match: {{prefix: /health}}\n  - match: {{prefix: /a}}\n    requires: {{provider_name: a}}\n  - match: {{path: /any}}\n    requires: {{requires_any: {{requirements: [{{provider_name: a}}, {{allow_missing: {{}}}}]}}}}\n  - match: {{prefix: /n}}\n    requirement_name: both\n  requirement_map:\n    both:\n      requires_all: {{requirements: [{{provider_name: a}}, {{provider_and_audiences: {{provider_name: b, audiences: [y]}}}}]}}\n  bypass_cors_preflight: true\n"
    ));
    assert!(d.errors.is_empty(), "{}", errors(&d));
    let j = j.unwrap();
    assert_eq!(j.providers.len(), 2);
    let a = &j.providers[0];
    assert_eq!((a.name.as_str(), a.issuer.as_str()), ("a", "https://a.example"));
    assert_eq!(a.from_headers[0], JwtHeader { name: "x-jwt".into(), value_prefix: "Token ".into() });
    assert_eq!(a.forward_payload_header, "x-payload");
    assert_eq!(a.claim_to_headers[0].header_name, "x-sub");
    assert_eq!(a.max_lifetime, Some(Duration::from_secs(3600)));
    assert!(j.bypass_cors_preflight);
    assert_eq!(j.rules.len(), 4);
    assert_eq!(j.rules[0].requirement, RuleRequirement::None);
    assert_eq!(j.rules[1].requirement, RuleRequirement::Requires(JwtRequirement::ProviderName("a".into())));
    assert_eq!(
        j.rules[2].requirement,
        RuleRequirement::Requires(JwtRequirement::RequiresAny(vec![
            JwtRequirement::ProviderName("a".into()),
            JwtRequirement::AllowMissing
        ]))
    );
    assert_eq!(j.rules[3].requirement, RuleRequirement::Named(0));
}

#[test]
fn unknown_providers_and_requirement_names_are_errors_with_envoys_messages() {
    let (_, d) =
        decode(&format!("{PROVIDERS}  rules:\n  - match: {{prefix: /}}\n    requires: {{provider_name: c}}\n"));
    let e = errors(&d);
    assert!(
        e.contains("f.typed_config.rules[0].requires") && e.contains("Required provider ['c'] is not configured."),
        "{e}"
    );
    let (_, d) = decode(&format!(
        "{PROVIDERS}  requirement_map: {{r1: {{provider_name: a}}, r2: {{provider_name: b}}}}\n  rules:\n  - match: {{prefix: /}}\n    requirement_name: r3\n"
    ));
    let e = errors(&d);
    assert!(e.contains("f.typed_config.rules[0].requirement_name"), "{e}");
    assert!(e.contains("Wrong requirement_name: r3. It should be one of [r1,r2]"), "{e}");
}

#[test]
fn unsupported_fields_are_rejected_with_their_path() {
    let (_, d) = decode(
        "  providers:\n    r:\n      remote_jwks: {http_uri: {uri: 'https://x/jwks', cluster: c, timeout: 1s}, async_fetch: {}, retry_policy: {retry_on: 5xx}}\n",
    );
    let e = errors(&d);
    assert!(e.contains("f.typed_config.providers.r.remote_jwks.async_fetch"), "{e}");
    assert!(e.contains("f.typed_config.providers.r.remote_jwks.retry_policy.retry_on"), "{e}");
    let (_, d) = decode("  providers:\n    p: {issuer: x}\n");
    assert!(errors(&d).contains("one of `local_jwks` or `remote_jwks` is required"), "{}", errors(&d));
    let (_, d) = decode("  filter_state_rules: {name: n}\n");
    assert!(errors(&d).contains("f.typed_config.filter_state_rules"), "{}", errors(&d));
    let (_, d) = decode("  rules:\n  - match: {prefix: /, grpc: {}}\n");
    assert!(errors(&d).contains("f.typed_config.rules[0].match"), "{}", errors(&d));
    let (_, d) = decode("  requirement_map: {r: {requires_any: {requirements: [{provider_name: a}]}}}\n");
    assert!(errors(&d).contains("needs at least 2 requirements"), "{}", errors(&d));
}

#[test]
fn per_route_config() {
    let yaml = |s: &str| {
        let n = parse(s).unwrap();
        let mut d = Decoder::new();
        let f = Fields::of(&mut d, &n, "p").unwrap();
        let v = JwtPerRoute::decode_fields(&mut d, f);
        (v, d)
    };
    assert_eq!(yaml("{disabled: true}").0, Some(JwtPerRoute::Disabled));
    assert_eq!(yaml("{requirement_name: r}").0, Some(JwtPerRoute::RequirementName("r".into())));
    assert!(errors(&yaml("{disabled: false}").1).contains("must be true"));
    assert!(errors(&yaml("{}").1).contains("one of `disabled` or `requirement_name`"));
}

#[test]
fn jwt_cache_config_takes_envoys_defaults_for_zero() {
    let provider = |c: &str| {
        let (j, d) = decode(&format!("  providers:\n    p:\n      local_jwks: {{inline_string: x}}\n{c}"));
        assert!(d.errors.is_empty(), "{}", errors(&d));
        j.unwrap().providers[0].jwt_cache_config
    };
    assert_eq!(provider(""), None);
    let defaults = JwtCacheConfig { jwt_cache_size: 100, jwt_max_token_size: 4096 };
    assert_eq!(provider("      jwt_cache_config: {}\n"), Some(defaults));
    assert_eq!(
        provider("      jwt_cache_config: {jwt_cache_size: 7, jwt_max_token_size: 900}\n"),
        Some(JwtCacheConfig { jwt_cache_size: 7, jwt_max_token_size: 900 })
    );
    let (_, d) =
        decode("  providers:\n    p:\n      local_jwks: {inline_string: x}\n      jwt_cache_config: {size: 1}\n");
    assert!(errors(&d).contains("f.typed_config.providers.p.jwt_cache_config.size"), "{}", errors(&d));
}

#[test]
fn remote_jwks_loads_with_envoys_default_cache_duration() {
    let (j, d) = decode(
        "  providers:\n    r:\n      remote_jwks: {http_uri: {uri: 'https://idp/jwks', cluster: idp, timeout: 2s}}\n    s:\n      remote_jwks: {http_uri: {uri: 'http://idp/k', cluster: idp, timeout: 1s}, cache_duration: 30s}\n",
    );
    assert!(d.errors.is_empty(), "{}", errors(&d));
    let j = j.unwrap();
    let JwksSource::Remote(r) = &j.providers[0].jwks else { panic!("{:?}", j.providers[0].jwks) };
    assert_eq!(
        r,
        &RemoteJwksConfig {
            uri: "https://idp/jwks".into(),
            cluster: "idp".into(),
            timeout: Duration::from_secs(2),
            cache_duration: Duration::from_secs(600),
            retry_policy: None,
        }
    );
    let JwksSource::Remote(s) = &j.providers[1].jwks else { panic!() };
    assert_eq!(s.cache_duration, Duration::from_secs(30));
    let (_, d) =
        decode("  providers:\n    r:\n      remote_jwks: {http_uri: {uri: 'https://idp/jwks', timeout: 2s}}\n");
    assert!(errors(&d).contains("f.typed_config.providers.r.remote_jwks.http_uri.cluster"), "{}", errors(&d));
    let (_, d) = decode(
        "  providers:\n    r:\n      local_jwks: {inline_string: x}\n      remote_jwks: {http_uri: {uri: 'https://idp/jwks', cluster: c, timeout: 2s}}\n",
    );
    assert!(errors(&d).contains("set only one of `local_jwks` and `remote_jwks`"), "{}", errors(&d));
}

/// `remote_jwks.retry_policy` as Envoy converts it for the fetch: `num_retries` 1 and a
/// 1 s / 10 s back-off unless given, `max_interval` 10 x `base_interval` by default,
/// each try limited to `max_interval`, retried on 5xx, gateway-error, connect-failure
/// and reset; a cap under the base is refused.
#[test]
fn remote_jwks_retry_policy_is_envoys_conversion() {
    let remote = |policy: &str| {
        let (j, d) = decode(&format!(
            "  providers:\n    r:\n      remote_jwks: {{http_uri: {{uri: 'https://x/jwks', cluster: c, timeout: 1s}}, retry_policy: {policy}}}\n"
        ));
        (
            j.and_then(|j| match &j.providers[0].jwks {
                JwksSource::Remote(r) => r.retry_policy.clone(),
                _ => None,
            }),
            errors(&d),
        )
    };
    let (p, e) = remote("{}");
    let p = p.unwrap_or_else(|| panic!("{e}"));
    assert_eq!(p.num_retries, 1);
    assert_eq!(p.back_off.base_interval, Duration::from_secs(1));
    assert_eq!(p.back_off.max_interval, Duration::from_secs(10));
    let (p, e) = remote("{num_retries: 3, retry_back_off: {base_interval: 0.05s}}");
    let p = p.unwrap_or_else(|| panic!("{e}"));
    assert_eq!((p.num_retries, p.back_off.max_interval), (3, Duration::from_millis(500)));
    assert_eq!(
        p.route_retry_policy(),
        "retry_policy: {retry_on: '5xx,gateway-error,connect-failure,reset', num_retries: 3, per_try_timeout: 0.5s, \
         retry_back_off: {base_interval: 0.05s, max_interval: 0.5s}}"
    );
    let (_, e) = remote("{retry_back_off: {base_interval: 2s, max_interval: 1s}}");
    assert!(e.contains("retry_policy.retry_back_off.max_interval"), "{e}");
}

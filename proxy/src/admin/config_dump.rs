//! `/config_dump`'s query, as Envoy's admin: `?include_eds` adds the
//! `EndpointsConfigDump` (left out otherwise); `?resource=<field>` answers only the
//! elements of that repeated field of the configs, each packed as an `Any` of its own
//! type (`envoy.admin.v3.ClustersConfigDump.DynamicCluster`, ...). A field that no
//! config has is 404 `<field> not found in config dump`; one that is not repeated is
//! 400. The dump itself is rendered when the config changes; this only selects.

use super::handlers::Response;

/// The element type of each repeated field of the `*ConfigDump` messages sluice shows.
const ELEMENTS: &[(&str, &str)] = &[
    ("static_listeners", "ListenersConfigDump.StaticListener"),
    ("dynamic_listeners", "ListenersConfigDump.DynamicListener"),
    ("static_clusters", "ClustersConfigDump.StaticCluster"),
    ("dynamic_active_clusters", "ClustersConfigDump.DynamicCluster"),
    ("dynamic_warming_clusters", "ClustersConfigDump.DynamicCluster"),
    ("static_route_configs", "RoutesConfigDump.StaticRouteConfig"),
    ("dynamic_route_configs", "RoutesConfigDump.DynamicRouteConfig"),
    ("static_endpoint_configs", "EndpointsConfigDump.StaticEndpointConfig"),
    ("dynamic_endpoint_configs", "EndpointsConfigDump.DynamicEndpointConfig"),
    ("static_secrets", "SecretsConfigDump.StaticSecret"),
    ("dynamic_active_secrets", "SecretsConfigDump.DynamicSecret"),
    ("dynamic_warming_secrets", "SecretsConfigDump.DynamicSecret"),
];

/// The answer for `dump` (the rendered `ConfigDump`) and `eds` (the rendered
/// `EndpointsConfigDump` `Any`, empty when there is none) under `params`.
pub fn render(dump: String, eds: &str, params: &[(String, String)]) -> Response {
    let include_eds = params.iter().any(|(k, _)| k == "include_eds");
    let dump = if include_eds && !eds.is_empty() { with_config(dump, eds) } else { dump };
    match params.iter().find(|(k, _)| k == "resource") {
        None => Response::json(dump),
        Some((_, resource)) => select(&dump, resource),
    }
}

/// `dump` with `config` appended to its `configs`.
fn with_config(mut dump: String, config: &str) -> String {
    let Some(end) = dump.rfind(']') else { return dump };
    let empty = dump[..end].trim_end().ends_with('[');
    let sep = if empty { "" } else { "," };
    dump.insert_str(end, &format!("{sep}{}\n", config.trim_end()));
    dump
}

/// `{"configs": [...]}` with the elements of `resource`.
fn select(dump: &str, resource: &str) -> Response {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(dump) else {
        return Response::text(500, "the config dump is not JSON\n");
    };
    let configs = v.get("configs").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    for c in &configs {
        let Some(field) = c.get(resource) else { continue };
        let Some(items) = field.as_array() else {
            return Response::text(
                400,
                format!("{resource} is not a repeated field. Use ?mask={resource} to get only this field"),
            );
        };
        let Some((_, element)) = ELEMENTS.iter().find(|(f, _)| *f == resource) else { continue };
        let out: Vec<serde_json::Value> = items
            .iter()
            .map(|item| {
                let mut m = serde_json::Map::new();
                m.insert("@type".into(), format!("type.googleapis.com/envoy.admin.v3.{element}").into());
                if let Some(fields) = item.as_object() {
                    m.extend(fields.clone());
                }
                serde_json::Value::Object(m)
            })
            .collect();
        let body = serde_json::to_string_pretty(&serde_json::json!({ "configs": out })).unwrap_or_default();
        return Response::json(body + "\n");
    }
    Response::text(404, format!("{resource} not found in config dump"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{
  "configs": [
    {
      "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
      "bootstrap": {}
    },
    {
      "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
      "version_info": "3",
      "dynamic_active_clusters": [{"version_info": "3", "cluster": {"name": "a"}}]
    }
  ]
}
"#;
    const EDS: &str =
        r#"{"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "static_endpoint_configs": []}"#;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("JSON")
    }

    #[test]
    fn include_eds_adds_the_endpoints_dump() {
        let plain = render(DUMP.into(), EDS, &q(&[]));
        assert_eq!(json(&plain)["configs"].as_array().unwrap().len(), 2);
        let with = render(DUMP.into(), EDS, &q(&[("include_eds", "")]));
        let configs = json(&with)["configs"].as_array().unwrap().clone();
        assert_eq!(configs.len(), 3);
        assert_eq!(configs[2]["@type"], "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump");
    }

    #[test]
    fn resource_selects_the_elements_of_a_repeated_field() {
        let r = render(DUMP.into(), EDS, &q(&[("resource", "dynamic_active_clusters")]));
        assert_eq!(r.status, 200);
        let v = json(&r);
        assert_eq!(v["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster");
        assert_eq!(v["configs"][0]["cluster"]["name"], "a");
        let r = render(DUMP.into(), EDS, &q(&[("resource", "static_endpoint_configs"), ("include_eds", "")]));
        assert_eq!((r.status, json(&r)["configs"].as_array().map(Vec::len)), (200, Some(0)));
        let r = render(DUMP.into(), EDS, &q(&[("resource", "static_endpoint_configs")]));
        assert_eq!(r.status, 404, "the endpoints need include_eds");
        assert_eq!(String::from_utf8_lossy(&r.body), "static_endpoint_configs not found in config dump");
        let r = render(DUMP.into(), EDS, &q(&[("resource", "version_info")]));
        assert_eq!(r.status, 400);
    }
}

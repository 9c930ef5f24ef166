//! An immutable runtime snapshot: the layers' values merged, later layers winning.
//!
//! Built on the main thread whenever a layer changes and shared read-only (`Arc`) with
//! every worker; reads take no lock and never allocate. The readers are Envoy's
//! `SnapshotImpl` accessors, with the same fallbacks: a key that is absent, or whose
//! value has no reading of the asked type, yields the caller's default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sluice_config::core::FractionalPercent;
use sluice_config::runtime::Entry;

/// One layer's values, as loaded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layer {
    pub name: String,
    pub values: BTreeMap<String, Entry>,
}

/// The merged view of all layers.
#[derive(Debug, Default)]
pub struct Snapshot {
    layers: Vec<Arc<Layer>>,
    values: HashMap<String, Entry>,
}

impl Snapshot {
    /// A runtime with no layers: every key reads its default.
    pub fn empty() -> Arc<Snapshot> {
        Arc::new(Snapshot::default())
    }

    /// Merge `layers` in order, later layers overriding earlier ones.
    pub fn new(layers: Vec<Arc<Layer>>) -> Snapshot {
        let mut values = HashMap::new();
        for layer in &layers {
            for (k, v) in &layer.values {
                values.insert(k.clone(), v.clone());
            }
        }
        Snapshot { layers, values }
    }

    pub fn layers(&self) -> &[Arc<Layer>] {
        &self.layers
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        if key.is_empty() || self.values.is_empty() {
            return None;
        }
        self.values.get(key)
    }

    /// The raw text of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.raw.as_str())
    }

    /// `getInteger`: the value's integer reading, else `default`.
    pub fn get_integer(&self, key: &str, default: u64) -> u64 {
        self.entry(key).and_then(|e| e.uint_value).unwrap_or(default)
    }

    /// `getDouble`: the value's double reading, else `default`.
    pub fn get_double(&self, key: &str, default: f64) -> f64 {
        self.entry(key).and_then(|e| e.double_value).unwrap_or(default)
    }

    /// `getBoolean`: the value's boolean reading, else `default`.
    pub fn get_boolean(&self, key: &str, default: bool) -> bool {
        self.entry(key).and_then(|e| e.bool_value).unwrap_or(default)
    }

    /// `featureEnabled(key, default_percent, random)`: `random % 100` below the
    /// integer value (capped at 100), else below `default`.
    pub fn feature_enabled(&self, key: &str, default: u64, random: u64) -> bool {
        random % 100 < self.get_integer(key, default).min(100)
    }

    /// `featureEnabled(key, FractionalPercent default, random)`: the value as a
    /// fractional percent, or as an integer percent of 100 (above 100: always), else
    /// `default`; hit when `random % denominator < numerator`.
    pub fn feature_enabled_fraction(&self, key: &str, default: FractionalPercent, random: u64) -> bool {
        let percent = match self.entry(key) {
            Some(Entry { fractional_percent: Some(p), .. }) => *p,
            Some(Entry { uint_value: Some(n), .. }) => {
                if *n > 100 {
                    return true;
                }
                FractionalPercent { numerator: *n as u32, denominator: sluice_config::core::Denominator::Hundred }
            }
            _ => default,
        };
        percent.hits(random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::core::Denominator;

    fn layer(name: &str, kv: &[(&str, &str)]) -> Arc<Layer> {
        Arc::new(Layer {
            name: name.into(),
            values: kv.iter().map(|(k, v)| (k.to_string(), Entry::parse(v))).collect(),
        })
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let s = Snapshot::new(vec![layer("base", &[("a", "1"), ("b", "2")]), layer("admin", &[("b", "3")])]);
        assert_eq!(s.get_integer("a", 0), 1);
        assert_eq!(s.get_integer("b", 0), 3);
        assert_eq!(s.get("b"), Some("3"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.layers().len(), 2);
    }

    #[test]
    fn readers_fall_back_to_defaults() {
        let s = Snapshot::new(vec![layer("l", &[("text", "abc"), ("flag", "true"), ("neg", "-1.5")])]);
        assert_eq!(s.get_integer("missing", 7), 7);
        assert_eq!(s.get_integer("text", 7), 7);
        assert_eq!(s.get_integer("flag", 7), 7, "a boolean is no integer");
        assert!(s.get_boolean("flag", false));
        assert!(s.get_boolean("text", true), "no boolean reading: default");
        assert_eq!(s.get_double("neg", 0.0), -1.5);
        assert_eq!(s.get_integer("neg", 9), 9);
        assert_eq!(s.get_integer("", 4), 4, "the empty key is never set");
    }

    #[test]
    fn feature_enabled_percent_and_fraction() {
        let s = Snapshot::new(vec![layer(
            "l",
            &[("p30", "30"), ("big", "250"), ("frac", "{numerator: 5, denominator: TEN_THOUSAND}"), ("zero", "0")],
        )]);
        assert!(s.feature_enabled("p30", 0, 29));
        assert!(!s.feature_enabled("p30", 0, 30));
        assert!(s.feature_enabled("big", 0, 99), "capped at 100: always");
        assert!(s.feature_enabled("missing", 50, 149));
        let never = FractionalPercent::NEVER;
        assert!(s.feature_enabled_fraction("big", never, 12345), "an integer above 100: always");
        assert!(s.feature_enabled_fraction("p30", never, 129));
        assert!(!s.feature_enabled_fraction("p30", never, 130));
        assert!(s.feature_enabled_fraction("frac", never, 10_004));
        assert!(!s.feature_enabled_fraction("frac", never, 10_005));
        assert!(!s.feature_enabled_fraction("zero", FractionalPercent::ALWAYS, 0));
        let half = FractionalPercent { numerator: 50, denominator: Denominator::Hundred };
        assert!(s.feature_enabled_fraction("missing", half, 49));
        assert!(!s.feature_enabled_fraction("missing", half, 50));
    }
}

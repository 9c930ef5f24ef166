//! The RBAC filter's `matcher` / `shadow_matcher` (the generic `xds.type.matcher.v3.
//! Matcher` API with `envoy.config.rbac.v3.Action` actions), in the subset sluice
//! evaluates: a `matcher_list` of predicates over request headers
//! (`HttpRequestHeaderMatchInput` with a `value_match`), combined by `or_matcher`,
//! `and_matcher` and `not_matcher`, each naming an action, and `on_no_match`. The
//! first matching entry's action decides; nothing matching and no `on_no_match` denies
//! (Envoy's default). Matcher trees, nested matchers, other inputs and custom matches
//! are rejected with their path.

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::filters::rbac::RbacAction;
use crate::matcher::StringMatcher;
use crate::node::Node;

const HEADER_INPUT_TYPE: &str = "envoy.type.matcher.v3.HttpRequestHeaderMatchInput";
const ACTION_TYPE: &str = "envoy.config.rbac.v3.Action";

/// A predicate of a matcher list.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `single_predicate` over a request header (lower-cased name); an absent header
    /// does not match.
    Header {
        name: String,
        value: StringMatcher,
    },
    Or(Vec<Predicate>),
    And(Vec<Predicate>),
    Not(Box<Predicate>),
}

/// `envoy.config.rbac.v3.Action`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatcherAction {
    pub name: String,
    pub action: RbacAction,
}

/// One `matcher_list` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMatcher {
    pub predicate: Predicate,
    pub on_match: MatcherAction,
}

/// `xds.type.matcher.v3.Matcher` as RBAC uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacMatcher {
    pub matchers: Vec<FieldMatcher>,
    pub on_no_match: Option<MatcherAction>,
}

impl Decode for RbacMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let list = f.take("matcher_list");
        let list_path = f.field_path("matcher_list");
        let on_no_match = match f.take("on_no_match") {
            Some(n) => Some(on_match(d, n, &f.field_path("on_no_match"))?),
            None => None,
        };
        f.unsupported_because(d, "matcher_tree", "RBAC matcher trees are not supported; use a matcher_list");
        f.finish(d);
        let mut matchers = Vec::new();
        if let Some(l) = list {
            let mut lf = Fields::of(d, l, &list_path)?;
            let items = lf.take("matchers");
            let items_path = lf.field_path("matchers");
            lf.finish(d);
            let Some(items) = items else {
                d.error(ErrorKind::Missing, &items_path, l.line, "required field is missing");
                return None;
            };
            let crate::node::Value::Seq(items) = &items.value else {
                d.invalid(items, &items_path, "must be a list");
                return None;
            };
            for (i, item) in items.iter().enumerate() {
                let p = format!("{items_path}[{i}]");
                let mut mf = Fields::of(d, item, &p)?;
                let predicate: Option<Predicate> = mf.req(d, "predicate");
                let om = mf.take("on_match");
                let om_path = mf.field_path("on_match");
                mf.finish(d);
                let Some(om) = om else {
                    d.error(ErrorKind::Missing, &om_path, item.line, "required field is missing");
                    return None;
                };
                matchers.push(FieldMatcher { predicate: predicate?, on_match: on_match(d, om, &om_path)? });
            }
        }
        Some(RbacMatcher { matchers, on_no_match })
    }
}

/// `OnMatch` with an RBAC `Action` (a nested matcher is not supported).
fn on_match(d: &mut Decoder, node: &Node, path: &str) -> Option<MatcherAction> {
    let mut f = Fields::of(d, node, path)?;
    let action = f.take("action");
    let action_path = f.field_path("action");
    f.unsupported_because(d, "matcher", "nested RBAC matchers are not supported");
    f.default_only(d, "keep_matching", false, "keep_matching is not supported");
    f.finish(d);
    let Some(action) = action else {
        d.error(ErrorKind::Missing, &action_path, node.line, "an on_match needs an action");
        return None;
    };
    let mut af = Fields::of(d, action, &action_path)?;
    let tc = af.take("typed_config");
    let tc_path = af.field_path("typed_config");
    let _name: Option<String> = af.opt(d, "name");
    af.finish(d);
    let Some(tc) = tc else {
        d.error(ErrorKind::Missing, &tc_path, action.line, "an action needs a typed_config");
        return None;
    };
    let t = typed_config(d, tc, &tc_path)?;
    if t.type_name != ACTION_TYPE {
        d.error(
            ErrorKind::Unsupported,
            &format!("{tc_path}.@type"),
            tc.line,
            format!("`{}` is not an RBAC action ({ACTION_TYPE})", t.type_name),
        );
        return None;
    }
    let mut a = t.fields;
    let name: String = a.or(d, "name", String::new());
    let rbac_action = a.or(d, "action", RbacAction::Allow);
    a.finish(d);
    Some(MatcherAction { name, action: rbac_action })
}

impl Decode for Predicate {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let single = f.take("single_predicate");
        let or = f.take("or_matcher");
        let and = f.take("and_matcher");
        let not = f.take("not_matcher");
        let line = f.line();
        f.finish(d);
        let set = [single, or, and, not].iter().filter(|n| n.is_some()).count();
        if set != 1 {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "a predicate sets exactly one of single_predicate, or_matcher, and_matcher, not_matcher",
            );
            return None;
        }
        if let Some(n) = single {
            return single_predicate(d, n, &format!("{path}.single_predicate"));
        }
        if let Some(n) = not {
            return Some(Predicate::Not(Box::new(d.decode(n, &format!("{path}.not_matcher"))?)));
        }
        let (n, p, is_or) = match (or, and) {
            (Some(n), _) => (n, format!("{path}.or_matcher"), true),
            (_, Some(n)) => (n, format!("{path}.and_matcher"), false),
            _ => return None,
        };
        let mut lf = Fields::of(d, n, &p)?;
        let list: Vec<Predicate> = lf.list(d, "predicate");
        lf.finish(d);
        if list.len() < 2 {
            d.invalid(n, &p, "needs at least two predicates");
            return None;
        }
        Some(if is_or { Predicate::Or(list) } else { Predicate::And(list) })
    }
}

fn single_predicate(d: &mut Decoder, node: &Node, path: &str) -> Option<Predicate> {
    let mut f = Fields::of(d, node, path)?;
    let input = f.take("input");
    let input_path = f.field_path("input");
    let value: Option<StringMatcher> = f.req(d, "value_match");
    f.unsupported_because(d, "custom_match", "custom matches are not supported; use value_match");
    f.finish(d);
    let Some(input) = input else {
        d.error(ErrorKind::Missing, &input_path, node.line, "required field is missing");
        return None;
    };
    let mut inf = Fields::of(d, input, &input_path)?;
    let tc = inf.take("typed_config");
    let tc_path = inf.field_path("typed_config");
    let _name: Option<String> = inf.opt(d, "name");
    inf.finish(d);
    let Some(tc) = tc else {
        d.error(ErrorKind::Missing, &tc_path, input.line, "an input needs a typed_config");
        return None;
    };
    let t = typed_config(d, tc, &tc_path)?;
    if t.type_name != HEADER_INPUT_TYPE {
        d.error(
            ErrorKind::Unsupported,
            &format!("{tc_path}.@type"),
            tc.line,
            format!("matching input `{}` is not supported (only {HEADER_INPUT_TYPE})", t.type_name),
        );
        return None;
    }
    let mut h = t.fields;
    let name_path = h.field_path("header_name");
    let name_node = h.take("header_name");
    let line = h.line();
    h.finish(d);
    let Some(name_node) = name_node else {
        d.error(ErrorKind::Missing, &name_path, line, "required field is missing");
        return None;
    };
    let name = crate::matcher::decode_header_name(d, name_node, &name_path);
    Some(Predicate::Header { name: name?, value: value? })
}

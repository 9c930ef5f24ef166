//! Dump of the small shared messages: `HeaderValueOption` (and the header mutations of
//! routes, virtual hosts and route configurations), `FractionalPercent`, `Int64Range`.

use super::{enum_name, Dump, Json};
use crate::core::{FractionalPercent, HeaderValueOption, Int64Range, RuntimeFractionalPercent};
use crate::route::{HeaderMutations, HeaderToAdd};

impl Dump for Int64Range {
    fn dump(&self) -> Json {
        Json::obj().with("start", self.start).with("end", self.end)
    }
}

impl Dump for HeaderValueOption {
    fn dump(&self) -> Json {
        header_value_option(&self.key, &self.value, self.append_action, self.keep_empty_value)
    }
}

/// A header to add, its value template written as configured (`%COMMAND%`s included).
impl Dump for HeaderToAdd {
    fn dump(&self) -> Json {
        header_value_option(&self.key, &self.value.raw, self.append_action, self.keep_empty_value)
    }
}

fn header_value_option(key: &str, value: &str, action: crate::core::AppendAction, keep_empty: bool) -> Json {
    Json::obj()
        .with("header", Json::obj().with("key", key).with("value", value))
        .with("append_action", enum_name(action))
        .with("keep_empty_value", keep_empty)
}

/// Add `<direction>_headers_to_add` and `<direction>_headers_to_remove` (direction is
/// `request` or `response`) to message `j`.
pub(super) fn with_headers(j: Json, direction: &str, h: &HeaderMutations) -> Json {
    j.with(&format!("{direction}_headers_to_add"), super::list(&h.to_add))
        .with(&format!("{direction}_headers_to_remove"), h.to_remove.clone())
}

/// `runtime_key` only when set (an empty key is no key).
impl Dump for RuntimeFractionalPercent {
    fn dump(&self) -> Json {
        let j = Json::obj().with("default_value", self.default_value.dump());
        if self.runtime_key.is_empty() {
            j
        } else {
            j.with("runtime_key", self.runtime_key.as_str())
        }
    }
}

impl Dump for FractionalPercent {
    fn dump(&self) -> Json {
        Json::obj().with("numerator", self.numerator).with("denominator", enum_name(self.denominator))
    }
}

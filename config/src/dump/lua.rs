//! Dump of the Lua filter's config and its per-route override, as configured (a
//! deprecated `inline_code` is written as `default_source_code.inline_string`).

use super::{Dump, Json};
use crate::filters::lua::{Lua, LuaPerRoute};

impl Dump for Lua {
    fn dump(&self) -> Json {
        let mut j = Json::obj();
        if let Some(s) = &self.default_source_code {
            j = j.with("default_source_code", s.source.dump());
        }
        if !self.source_codes.is_empty() {
            j = j.with(
                "source_codes",
                Json::Obj(self.source_codes.iter().map(|(n, s)| (n.clone(), s.source.dump())).collect()),
            );
        }
        if !self.stat_prefix.is_empty() {
            j = j.with("stat_prefix", &self.stat_prefix);
        }
        j.with("clear_route_cache", self.clear_route_cache)
    }
}

impl Dump for LuaPerRoute {
    fn dump(&self) -> Json {
        match self {
            LuaPerRoute::Disabled => Json::obj().with("disabled", true),
            LuaPerRoute::Name(n) => Json::obj().with("name", n),
            LuaPerRoute::SourceCode(s) => Json::obj().with("source_code", s.source.dump()),
        }
    }
}

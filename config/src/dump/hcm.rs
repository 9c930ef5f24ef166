//! Dump of the HTTP connection manager and its route configuration.

use super::{Dump, Json};
use crate::hcm::HttpConnectionManager;

impl Dump for HttpConnectionManager {
    fn dump(&self) -> Json {
        Json::obj().with("stat_prefix", &self.stat_prefix)
    }
}

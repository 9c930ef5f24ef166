//! What jwt_authn keeps per worker (Envoy's thread-local `JwksCache`): for each provider
//! of a config, its verified-token cache ([`JwtCache`], when `jwt_cache_config` is set)
//! and, for `remote_jwks`, the keys this worker fetched ([`Fetched`]).
//! Nothing here is shared between workers: the state lives in a thread-local table
//! keyed by the config (a weak reference, so a replaced config's state is dropped on the
//! next lookup that adds one), made on the first request of that config on the worker.
//! A filter on a stream never holds the state across hooks, only during one.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use super::jwt_cache::JwtCache;
use super::remote_jwks::Fetched;
use super::verifier::Provider;
use super::JwtAuthnConfig;

/// One provider's state on one worker.
#[derive(Debug)]
pub struct ProviderState {
    pub jwt_cache: Option<JwtCache>,
    /// `remote_jwks`: the last keys fetched (expired ones are fetched again).
    pub remote: Option<Fetched>,
}

/// A config's state on one worker, by provider (config order).
#[derive(Debug)]
pub struct WorkerState {
    pub providers: Vec<ProviderState>,
}

impl WorkerState {
    /// Fresh state for `providers` (empty caches).
    pub fn new(providers: &[Provider]) -> WorkerState {
        let providers = providers
            .iter()
            .map(|p| ProviderState { jwt_cache: p.config.jwt_cache_config.as_ref().map(JwtCache::new), remote: None })
            .collect();
        WorkerState { providers }
    }
}

type Table = Vec<(Weak<JwtAuthnConfig>, Rc<RefCell<WorkerState>>)>;

thread_local! {
    static STATES: RefCell<Table> = const { RefCell::new(Vec::new()) };
}

/// This worker's state of `config`, made on first use. (A live `Weak` keeps its
/// allocation, so a pointer match is always the same config.)
pub fn state(config: &Arc<JwtAuthnConfig>) -> Rc<RefCell<WorkerState>> {
    STATES.with(|t| {
        let mut t = t.borrow_mut();
        let me = Arc::as_ptr(config);
        if let Some((_, s)) = t.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), me)) {
            return Rc::clone(s);
        }
        t.retain(|(w, _)| w.strong_count() > 0);
        let s = Rc::new(RefCell::new(WorkerState::new(&config.providers)));
        t.push((Arc::downgrade(config), Rc::clone(&s)));
        s
    })
}

//! sluice's configuration: a faithful subset of Envoy's v3 bootstrap.
//!
//! [`load_str`] and [`load_file`] turn a YAML or JSON document into a typed
//! [`Bootstrap`] with Envoy's defaults filled in, or into every error the document
//! holds, each naming the field's path and line. Fields that Envoy has but sluice does
//! not implement are rejected as "unsupported"; fields that are safe to skip are accepted
//! with a [`Warning`]. Nothing here opens a socket or reads the clock: the result is pure
//! data that the proxy compiles into its runtime structures.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod address;
pub mod bootstrap;
pub mod cluster;
pub mod core;
pub mod decode;
pub mod dump;
pub mod error;
pub mod fault;
pub mod filters;
pub mod hcm;
pub mod inert;
pub mod listener;
pub mod matcher;
pub mod metadata;
pub mod node;
pub mod overload;
pub mod route;
pub mod runtime;
pub mod tcp_proxy;
pub mod tls;
pub mod trace;
pub mod upstream_http;
pub mod validate;
pub mod xds;

pub use bootstrap::{Admin, Bootstrap};
pub use error::{ConfigError, ConfigErrors, ErrorKind, Warning};

/// A decoded bootstrap and the warnings for the fields it ignores.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub bootstrap: Bootstrap,
    pub warnings: Vec<Warning>,
}

/// Everything one load found: the bootstrap as far as it decoded, every error and every
/// warning. The bootstrap is there even when there are errors (without the parts that
/// failed), so that a caller can check files and certificates in the same pass and
/// report everything at once.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub bootstrap: Option<Bootstrap>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl Decoded {
    fn failed(error: ConfigError) -> Decoded {
        Decoded { bootstrap: None, errors: vec![error], warnings: Vec::new() }
    }
}

/// Decode a bootstrap from YAML or JSON text, keeping what decoded next to the errors.
pub fn decode_str(text: &str) -> Decoded {
    let node = match node::parse(text) {
        Ok(n) => n,
        Err(e) => {
            return Decoded::failed(ConfigError {
                kind: ErrorKind::Syntax,
                path: String::new(),
                line: e.line,
                message: e.message,
            })
        }
    };
    let mut d = decode::Decoder::new();
    let mut bootstrap: Option<Bootstrap> = d.decode(&node, "");
    // With dynamic resources, the whole-config checks run once the files are read
    // (`xds::compose`): a static listener may name a cluster that CDS delivers.
    if let Some(b) = bootstrap.as_mut().filter(|b| d.errors.is_empty() && b.dynamic_resources.is_none()) {
        // Cross-references only once every part decoded: a cluster that failed to
        // decode would otherwise also be reported as an unknown cluster.
        validate::validate(b, &mut d);
        if b.listeners.is_empty() && d.errors.is_empty() {
            d.warnings.push(Warning {
                path: "static_resources.listeners".into(),
                line: 0,
                message: "the config has no listeners: nothing will listen for connections".into(),
            });
        }
    }
    Decoded { bootstrap, errors: d.errors, warnings: d.warnings }
}

/// Decode a bootstrap from YAML or JSON text.
pub fn load_str(text: &str) -> Result<Loaded, ConfigErrors> {
    into_loaded(decode_str(text))
}

/// Read and decode a bootstrap file, keeping what decoded next to the errors.
pub fn decode_file(path: &std::path::Path) -> Decoded {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_str(&text),
        Err(e) => Decoded::failed(ConfigError {
            kind: ErrorKind::Syntax,
            path: String::new(),
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }),
    }
}

/// Read and decode a bootstrap file.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    into_loaded(decode_file(path))
}

fn into_loaded(decoded: Decoded) -> Result<Loaded, ConfigErrors> {
    match decoded.bootstrap {
        Some(bootstrap) if decoded.errors.is_empty() => Ok(Loaded { bootstrap, warnings: decoded.warnings }),
        _ => Err(ConfigErrors(decoded.errors)),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod real_config_tests;

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
pub mod hcm;
pub mod listener;
pub mod matcher;
pub mod node;
pub mod overload;
pub mod route;
pub mod tcp_proxy;
pub mod tls;
pub mod validate;

pub use bootstrap::{Admin, Bootstrap};
pub use error::{ConfigError, ConfigErrors, ErrorKind, Warning};

/// A decoded bootstrap and the warnings for the fields it ignores.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub bootstrap: Bootstrap,
    pub warnings: Vec<Warning>,
}

/// Decode a bootstrap from YAML or JSON text.
pub fn load_str(text: &str) -> Result<Loaded, ConfigErrors> {
    let node = node::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            kind: ErrorKind::Syntax,
            path: String::new(),
            line: e.line,
            message: e.message,
        }])
    })?;
    let mut d = decode::Decoder::new();
    let bootstrap: Option<Bootstrap> = d.decode(&node, "");
    match bootstrap {
        Some(mut b) if d.errors.is_empty() => {
            validate::validate(&mut b, &mut d);
            if d.errors.is_empty() {
                Ok(Loaded { bootstrap: b, warnings: d.warnings })
            } else {
                Err(ConfigErrors(d.errors))
            }
        }
        _ => Err(ConfigErrors(d.errors)),
    }
}

/// Read and decode a bootstrap file.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            kind: ErrorKind::Syntax,
            path: String::new(),
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }])
    })?;
    load_str(&text)
}

#[cfg(test)]
mod tests;

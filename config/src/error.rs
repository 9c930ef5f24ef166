//! Config errors and warnings, each tied to a field path and a line.

use std::fmt;

/// What went wrong with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The document is not valid YAML/JSON.
    Syntax,
    /// Not a field of this Envoy message (a typo, or not Envoy at all).
    UnknownField,
    /// A real Envoy field (or extension) that sluice does not implement.
    Unsupported,
    /// A required field is absent.
    Missing,
    /// The value has the wrong type or is out of range.
    Invalid,
    /// A name refers to something that does not exist, or is defined twice.
    Reference,
}

/// One config error: `path (line N): message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    /// Dotted path in snake_case, e.g. `static_resources.clusters[0].connect_timeout`.
    pub path: String,
    /// 1-based line in the source document (0 when unknown).
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (true, 0) => write!(f, "{}", self.message),
            (true, line) => write!(f, "line {line}: {}", self.message),
            (false, 0) => write!(f, "{}: {}", self.path, self.message),
            (false, line) => write!(f, "{} (line {line}): {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// All errors of one load, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A field that is accepted but has no effect in sluice (tagged I in ENVOY_SUBSET.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.path, self.message),
            line => write!(f, "{} (line {line}): {}", self.path, self.message),
        }
    }
}

//! `config.core.v3.DataSource`: bytes from a file, inline text, inline base64 bytes or
//! an environment variable.
//!
//! Decoding only records where the bytes live; [`DataSource::read`] fetches them, and
//! is called again on every reload, so rotated certificate files are picked up.

use std::fmt;
use std::path::PathBuf;

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    Filename(PathBuf),
    InlineString(String),
    InlineBytes(Vec<u8>),
    EnvironmentVariable(String),
}

impl DataSource {
    /// The bytes, read now.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            DataSource::Filename(path) => std::fs::read(path).map_err(|e| {
                let mut message = format!("cannot read {}: {e}", path.display());
                if path.is_relative() {
                    // Envoy opens a relative filename from the working directory, not
                    // from the config file's directory: say which one that was.
                    match std::env::current_dir() {
                        Ok(cwd) => message.push_str(&format!(
                            " (a relative path is read from the working directory, {})",
                            cwd.display()
                        )),
                        Err(_) => message.push_str(" (a relative path is read from the working directory)"),
                    }
                }
                message
            }),
            DataSource::InlineString(s) => Ok(s.as_bytes().to_vec()),
            DataSource::InlineBytes(b) => Ok(b.clone()),
            DataSource::EnvironmentVariable(name) => match std::env::var_os(name) {
                Some(v) => Ok(v.into_encoded_bytes()),
                None => Err(format!("environment variable {name} is not set")),
            },
        }
    }
}

/// Says where the bytes come from, never what they are (they may be a private key).
impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Filename(path) => write!(f, "file {}", path.display()),
            DataSource::InlineString(_) => f.write_str("inline_string"),
            DataSource::InlineBytes(_) => f.write_str("inline_bytes"),
            DataSource::EnvironmentVariable(name) => write!(f, "environment variable {name}"),
        }
    }
}

impl Decode for DataSource {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let filename: Option<String> = f.opt(d, "filename");
        let inline_string: Option<String> = f.opt(d, "inline_string");
        let inline_bytes: Option<String> = f.opt(d, "inline_bytes");
        let environment_variable: Option<String> = f.opt(d, "environment_variable");
        f.empty_only(
            d,
            "watched_directory",
            "sluice does not watch directories; reload the config (SIGHUP) after rotating files",
        );
        let line = f.line();
        f.finish(d);
        let set = [filename.is_some(), inline_string.is_some(), inline_bytes.is_some(), environment_variable.is_some()];
        match set.iter().filter(|s| **s).count() {
            1 => {}
            0 => {
                d.error(
                    ErrorKind::Missing,
                    path,
                    line,
                    "one of filename, inline_string, inline_bytes or environment_variable is required",
                );
                return None;
            }
            _ => {
                d.invalid(node, path, "set only one of filename, inline_string, inline_bytes and environment_variable");
                return None;
            }
        }
        if let Some(name) = filename {
            if name.is_empty() {
                d.invalid(node, &format!("{path}.filename"), "must not be empty");
                return None;
            }
            return Some(DataSource::Filename(name.into()));
        }
        if let Some(s) = inline_string {
            return Some(DataSource::InlineString(s));
        }
        if let Some(b64) = inline_bytes {
            return match base64_decode(&b64) {
                Some(bytes) => Some(DataSource::InlineBytes(bytes)),
                None => {
                    d.invalid(node, &format!("{path}.inline_bytes"), "not valid base64");
                    None
                }
            };
        }
        let name = environment_variable?;
        if name.is_empty() {
            d.invalid(node, &format!("{path}.environment_variable"), "must not be empty");
            return None;
        }
        Some(DataSource::EnvironmentVariable(name))
    }
}

/// proto3 JSON `bytes`: standard or URL-safe base64, padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover character carries fewer than 8 bits: not valid base64.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("aGk/+w=="), Some(vec![b'h', b'i', 0x3f, 0xfb]));
        assert_eq!(base64_decode("aGk_-w"), Some(vec![b'h', b'i', 0x3f, 0xfb]));
        assert_eq!(base64_decode(""), Some(vec![]));
        assert_eq!(base64_decode("a"), None);
        assert_eq!(base64_decode("a b"), None);
    }

    #[test]
    fn read_sources() {
        assert_eq!(DataSource::InlineString("x".into()).read().unwrap(), b"x");
        let err = DataSource::Filename("/nonexistent/sluice.pem".into()).read().unwrap_err();
        assert!(err.contains("cannot read /nonexistent/sluice.pem"), "{err}");
        assert!(!err.contains("working directory"), "{err}");
        let err = DataSource::Filename("sluice-surely-missing/servercert.pem".into()).read().unwrap_err();
        let cwd = std::env::current_dir().unwrap();
        assert!(err.starts_with("cannot read sluice-surely-missing/servercert.pem: "), "{err}");
        assert!(
            err.ends_with(&format!("(a relative path is read from the working directory, {})", cwd.display())),
            "{err}"
        );
        assert_eq!(DataSource::Filename("/a/b.pem".into()).to_string(), "file /a/b.pem");
        assert_eq!(DataSource::InlineString("secret".into()).to_string(), "inline_string");
        assert!(DataSource::EnvironmentVariable("SLUICE_TEST_SURELY_UNSET_VAR".into()).read().is_err());
    }
}

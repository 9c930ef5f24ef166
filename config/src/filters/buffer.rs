//! `extensions.filters.http.buffer.v3.Buffer` (`max_request_bytes`, required, > 0)
//! and `BufferPerRoute` (`disabled: true`, or a `buffer` of its own).

use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;

pub const BUFFER_TYPE: &str = "envoy.extensions.filters.http.buffer.v3.Buffer";
pub const BUFFER_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.buffer.v3.BufferPerRoute";

/// `Buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub max_request_bytes: u32,
}

impl Buffer {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<Buffer> {
        let path = f.field_path("max_request_bytes");
        let line = f.line();
        let max: Option<u32> = f.req(d, "max_request_bytes");
        f.finish(d);
        let max = max?;
        if max == 0 {
            d.error(ErrorKind::Invalid, &path, line, "value must be greater than 0");
            return None;
        }
        Some(Buffer { max_request_bytes: max })
    }
}

/// `BufferPerRoute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferPerRoute {
    Disabled,
    Buffer(Buffer),
}

impl BufferPerRoute {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<BufferPerRoute> {
        let path = f.path().to_string();
        let line = f.line();
        let disabled: Option<bool> = f.opt(d, "disabled");
        let bp = f.field_path("buffer");
        let buffer = f.take("buffer");
        f.finish(d);
        match (disabled, buffer) {
            (Some(true), None) => Some(BufferPerRoute::Disabled),
            (None, Some(node)) => {
                let bf = Fields::of(d, node, &bp)?;
                Some(BufferPerRoute::Buffer(Buffer::decode_fields(d, bf)?))
            }
            (Some(false), None) => {
                d.error(ErrorKind::Invalid, &format!("{path}.disabled"), line, "value must equal true");
                None
            }
            _ => {
                d.error(ErrorKind::Invalid, &path, line, "exactly one of `disabled` and `buffer` must be set");
                None
            }
        }
    }
}

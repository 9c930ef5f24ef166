//! Codec tests on real wire bytes: every Envoy rule with the status and details it
//! produces, body framing split at every byte, and round trips through the encoders.

mod body;
mod encode;
mod h2;
mod request;
mod response;

use std::sync::Arc;

use super::{Http1Settings, RequestError, RequestMeta, RequestParser, Status};
use crate::http::RequestHead;

/// Parse one complete request head with `settings`.
pub(super) fn parse_with(settings: Http1Settings, wire: &[u8]) -> Result<(RequestHead, RequestMeta), RequestError> {
    let mut parser = RequestParser::new(Arc::new(settings), false);
    let mut head = RequestHead::default();
    match parser.parse(wire, &mut head)? {
        Status::Complete(meta) => Ok((head, meta)),
        Status::Partial => panic!("head unexpectedly partial: {:?}", String::from_utf8_lossy(wire)),
    }
}

/// Parse with default settings.
pub(super) fn parse(wire: &[u8]) -> Result<(RequestHead, RequestMeta), RequestError> {
    parse_with(Http1Settings::default(), wire)
}

/// Assert `wire` is refused with exactly `status` and `details`.
#[track_caller]
pub(super) fn assert_rejected_with(settings: Http1Settings, wire: &[u8], status: u16, details: &str) {
    match parse_with(settings, wire) {
        Err(e) => {
            assert_eq!((e.status(), e.details()), (status, details), "for {:?}", String::from_utf8_lossy(wire));
        }
        Ok((head, _)) => panic!("accepted {:?} as {head:?}", String::from_utf8_lossy(wire)),
    }
}

#[track_caller]
pub(super) fn assert_rejected(wire: &[u8], status: u16, details: &str) {
    assert_rejected_with(Http1Settings::default(), wire, status, details);
}

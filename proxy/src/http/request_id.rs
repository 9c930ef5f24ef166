//! `x-request-id`: random UUIDs (version 4), as Envoy's default request-id extension
//! (`UuidRequestIdConfig`, source/extensions/request_id/uuid) generates them, and the
//! trace decision it packs into the UUID's version nibble (byte 14 of the text): `4`
//! not traced, `9` sampled, `a` forced by `x-envoy-force-trace`, `b` forced by the
//! client (`x-client-trace-id`).

use crate::http::HeaderMap;
use crate::rng::Rng;

pub const REQUEST_ID: &[u8] = b"x-request-id";
const UUID_LEN: usize = 36;
const TRACE_BYTE_POSITION: usize = 14;

/// Why a request is traced (Envoy's `Tracing::Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceReason {
    NotTraceable,
    /// Random sampling.
    Sampling,
    /// `x-envoy-force-trace`.
    ServiceForced,
    /// `x-client-trace-id`.
    ClientForced,
}

impl TraceReason {
    /// The reason traces (Envoy's `shouldTraceRequest`).
    pub fn traced(self) -> bool {
        self != TraceReason::NotTraceable
    }
}

/// The reason packed into a request's UUID (`getTraceReason`): not traceable unless
/// the header is a 36-byte UUID with a marked nibble.
pub fn trace_reason(h: &HeaderMap) -> TraceReason {
    match h.get(REQUEST_ID) {
        Some(v) if v.len() == UUID_LEN => match v[TRACE_BYTE_POSITION] {
            b'a' => TraceReason::ServiceForced,
            b'9' => TraceReason::Sampling,
            b'b' => TraceReason::ClientForced,
            _ => TraceReason::NotTraceable,
        },
        _ => TraceReason::NotTraceable,
    }
}

/// Pack `reason` into the request's UUID (`setTraceReason`); nothing unless
/// `pack_trace_reason` and the header is a 36-byte UUID.
pub fn set_trace_reason(h: &mut HeaderMap, reason: TraceReason, pack_trace_reason: bool) {
    if !pack_trace_reason {
        return;
    }
    let Some(v) = h.get(REQUEST_ID) else { return };
    if v.len() != UUID_LEN {
        return;
    }
    let mut uuid = [0u8; UUID_LEN];
    uuid.copy_from_slice(v);
    uuid[TRACE_BYTE_POSITION] = match reason {
        TraceReason::ServiceForced => b'a',
        TraceReason::ClientForced => b'b',
        TraceReason::Sampling => b'9',
        TraceReason::NotTraceable => b'4',
    };
    h.set(REQUEST_ID, &uuid);
}

/// The request id as an integer (`getInteger`): its first 8 characters read as hex.
pub fn to_integer(h: &HeaderMap) -> Option<u64> {
    let v = h.get(REQUEST_ID)?;
    let head = v.get(..8)?;
    let text = std::str::from_utf8(head).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// A version-4 UUID in its 36-character text form.
pub fn uuid4(rng: &mut Rng) -> [u8; 36] {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            o += 1;
        }
        out[o] = HEX[(byte >> 4) as usize];
        out[o + 1] = HEX[(byte & 15) as usize];
        o += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_reason_round_trip() {
        let mut rng = Rng::new(7);
        let mut h = HeaderMap::new();
        assert_eq!(trace_reason(&h), TraceReason::NotTraceable);
        h.set(REQUEST_ID, &uuid4(&mut rng));
        assert_eq!(trace_reason(&h), TraceReason::NotTraceable);
        for r in
            [TraceReason::Sampling, TraceReason::ServiceForced, TraceReason::ClientForced, TraceReason::NotTraceable]
        {
            set_trace_reason(&mut h, r, true);
            assert_eq!(trace_reason(&h), r);
        }
        set_trace_reason(&mut h, TraceReason::Sampling, false);
        assert_eq!(trace_reason(&h), TraceReason::NotTraceable, "pack_trace_reason: false leaves the id alone");
        h.set(REQUEST_ID, b"abc");
        set_trace_reason(&mut h, TraceReason::Sampling, true);
        assert_eq!(h.get(REQUEST_ID), Some(&b"abc"[..]), "not a UUID: unchanged");
        assert_eq!(to_integer(&h), None);
        h.set(REQUEST_ID, b"0000ffff-0000-4000-8000-000000000000");
        assert_eq!(to_integer(&h), Some(0xffff));
    }

    #[test]
    fn uuid_shape() {
        let mut rng = Rng::new(1);
        let a = uuid4(&mut rng);
        let b = uuid4(&mut rng);
        assert_ne!(a, b);
        let s = std::str::from_utf8(&a).unwrap();
        let parts: Vec<&str> = s.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }
}

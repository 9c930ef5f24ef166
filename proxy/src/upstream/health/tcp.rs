//! The TCP health check (Envoy's `TcpHealthCheckerImpl`): connect, send the `send`
//! payload (if any), and pass once every `receive` block has arrived in order. Without
//! `receive` a successful connect passes and the connection is closed at once.

use sluice_config::cluster::TcpHealthCheck;

/// A compiled TCP check.
#[derive(Debug, Clone, Default)]
pub struct TcpCheck {
    pub send: Vec<u8>,
    pub receive: Vec<Vec<u8>>,
}

impl TcpCheck {
    pub fn new(c: &TcpHealthCheck) -> TcpCheck {
        TcpCheck { send: c.send.clone(), receive: c.receive.iter().filter(|b| !b.is_empty()).cloned().collect() }
    }

    /// Only the connect is checked.
    pub fn connect_only(&self) -> bool {
        self.receive.is_empty()
    }

    /// Whether `data` holds every `receive` block, in order (Envoy's
    /// `PayloadMatcher::match`).
    pub fn matches(&self, data: &[u8]) -> bool {
        let mut start = 0;
        for block in &self.receive {
            match find(&data[start..], block) {
                Some(at) => start += at + block.len(),
                None => return false,
            }
        }
        true
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_must_appear_in_order() {
        let c = TcpCheck { send: b"PING".to_vec(), receive: vec![b"PO".to_vec(), b"NG".to_vec()] };
        assert!(c.matches(b"PONG"));
        assert!(c.matches(b"xxPOyyNGzz"));
        assert!(!c.matches(b"NGPO"));
        assert!(!c.matches(b"PON"));
        assert!(!c.connect_only());
        assert!(TcpCheck::default().connect_only());
        assert!(TcpCheck::default().matches(b""));
    }
}

//! Envoy's response flags (`%RESPONSE_FLAGS%`): why a response is what it is.

/// A set of response flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFlags(u32);

macro_rules! flags {
    ($($name:ident = $bit:expr, $short:literal;)*) => {
        impl ResponseFlags {
            $(pub const $name: ResponseFlags = ResponseFlags(1 << $bit);)*
            const TABLE: &'static [(ResponseFlags, &'static str)] = &[$((ResponseFlags::$name, $short)),*];
        }
    };
}

flags! {
    FAILED_LOCAL_HEALTH_CHECK = 0, "LH";
    NO_HEALTHY_UPSTREAM = 1, "UH";
    UPSTREAM_REQUEST_TIMEOUT = 2, "UT";
    LOCAL_RESET = 3, "LR";
    UPSTREAM_REMOTE_RESET = 4, "UR";
    UPSTREAM_CONNECTION_FAILURE = 5, "UF";
    UPSTREAM_CONNECTION_TERMINATION = 6, "UC";
    UPSTREAM_OVERFLOW = 7, "UO";
    NO_ROUTE_FOUND = 8, "NR";
    DELAY_INJECTED = 9, "DI";
    FAULT_INJECTED = 10, "FI";
    RATE_LIMITED = 11, "RL";
    DOWNSTREAM_CONNECTION_TERMINATION = 12, "DC";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 13, "URX";
    STREAM_IDLE_TIMEOUT = 14, "SI";
    DOWNSTREAM_PROTOCOL_ERROR = 15, "DPE";
    UPSTREAM_PROTOCOL_ERROR = 16, "UPE";
    NO_CLUSTER_FOUND = 17, "NC";
    DURATION_TIMEOUT = 18, "DT";
    OVERLOAD_MANAGER = 19, "OM";
    DROPPED_OVERLOAD = 20, "DO";
    UPSTREAM_MAX_STREAM_DURATION_REACHED = 21, "UMSDR";
    UNAUTHORIZED_EXTERNAL_SERVICE = 22, "UAEX";
    RATE_LIMIT_SERVICE_ERROR = 23, "RLSE";
}

impl ResponseFlags {
    pub const NONE: ResponseFlags = ResponseFlags(0);

    pub fn set(&mut self, f: ResponseFlags) {
        self.0 |= f.0;
    }

    pub fn contains(self, f: ResponseFlags) -> bool {
        self.0 & f.0 == f.0 && f.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flag with this short name (`UF`, `NR` ...), if sluice ever sets it.
    pub fn from_short(name: &str) -> Option<ResponseFlags> {
        Self::TABLE.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// True when any flag of `other` is set here.
    pub fn intersects(self, other: ResponseFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Short names joined by `,` (nothing when none).
    pub fn write_bytes(self, out: &mut Vec<u8>) {
        let mut first = true;
        for (f, name) in Self::TABLE {
            if self.contains(*f) {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
    }

    /// Envoy's text: short names joined by `,`, or `-` when none.
    pub fn write(self, out: &mut String) {
        if self.is_empty() {
            out.push('-');
            return;
        }
        let mut first = true;
        for (f, name) in Self::TABLE {
            if self.contains(*f) {
                if !first {
                    out.push(',');
                }
                out.push_str(name);
                first = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let mut s = String::new();
        ResponseFlags::NONE.write(&mut s);
        assert_eq!(s, "-");
        let mut f = ResponseFlags::NONE;
        f.set(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        f.set(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
        let mut s = String::new();
        f.write(&mut s);
        assert_eq!(s, "UF,URX");
    }
}

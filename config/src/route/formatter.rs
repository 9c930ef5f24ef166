//! Header-value templates: the `%COMMAND%` substitution strings Envoy accepts in
//! `request_headers_to_add` / `response_headers_to_add` values.
//!
//! A value is parsed once, at load, into [`FormatString`] pieces; the proxy only walks
//! the pieces per request. The grammar is Envoy's substitution-format parser:
//! `%%` is a literal `%`; a command is `%NAME%`, `%NAME(arg)%` or `%NAME(arg):N%`
//! (`N` truncates the output). An unknown command or a stray `%` is a config error, as
//! in Envoy ("Not supported field in StreamInfo"). A command that has no value for a
//! request formats as the empty string, and an empty header value is dropped unless
//! `keep_empty_value` is set.

use std::fmt;

/// A parsed header-value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatString {
    /// The value as written in the config.
    pub raw: String,
    pub pieces: Vec<FormatPiece>,
}

impl FormatString {
    /// The value when it holds no command (no per-request work at all).
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [FormatPiece::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPiece {
    Literal(String),
    Command { command: Command, max_len: Option<usize> },
}

/// The supported substitution commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamRemotePort,
    DownstreamDirectRemoteAddress,
    DownstreamDirectRemoteAddressWithoutPort,
    DownstreamDirectRemotePort,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    DownstreamLocalPort,
    UpstreamRemoteAddress,
    UpstreamRemoteAddressWithoutPort,
    UpstreamRemotePort,
    UpstreamCluster,
    Protocol,
    RequestedServerName,
    RouteName,
    ResponseCode,
    /// `%RESPONSE_FLAGS%`: Envoy's short flag names joined by `,`.
    ResponseFlags,
    /// `%BYTES_RECEIVED%`: request bytes (head and body) read from downstream.
    BytesReceived,
    /// `%BYTES_SENT%`: response bytes (head and body) written downstream.
    BytesSent,
    /// `%DURATION%`: milliseconds from the request's first byte to the last
    /// response byte.
    Duration,
    /// `%UPSTREAM_HOST%`: the upstream host's address.
    UpstreamHost,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: tries made upstream (retries included).
    UpstreamRequestAttemptCount,
    /// `%HOSTNAME%`: this machine's host name.
    Hostname,
    /// `%START_TIME%` / `%START_TIME(fmt)%`, in UTC.
    StartTime(TimeFormat),
    /// `%DYNAMIC_METADATA(NAMESPACE:KEY*)%`: the value at `path` in the namespace of
    /// the stream's dynamic metadata (a string as is, anything else as JSON; the whole
    /// namespace as JSON without a path). Access logs only.
    DynamicMetadata {
        namespace: String,
        path: Vec<String>,
    },
    /// `%REQ(name?alt)%`: the first value of `name`, else of `alt`.
    Req {
        main: String,
        alt: Option<String>,
    },
    /// `%RESP(name?alt)%`.
    Resp {
        main: String,
        alt: Option<String>,
    },
    /// `%GRPC_STATUS(CAMEL_STRING|SNAKE_STRING|NUMBER)%`: the response's gRPC status
    /// (trailers, else headers, else mapped from the HTTP status).
    GrpcStatus(GrpcStatusFormat),
}

/// How `%GRPC_STATUS%` prints (Envoy's default: CAMEL_STRING).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcStatusFormat {
    CamelString,
    SnakeString,
    Number,
}

impl Command {
    /// The command prints a number (JSON access logs keep it a number).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Command::ResponseCode
                | Command::BytesReceived
                | Command::BytesSent
                | Command::Duration
                | Command::UpstreamRequestAttemptCount
        )
    }
}

/// A strftime-style format, parsed. Envoy's default for `%START_TIME%` is
/// `%Y-%m-%dT%H:%M:%E3SZ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat(pub Vec<TimeItem>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeItem {
    Literal(String),
    /// `%Y`
    Year,
    /// `%y`
    YearShort,
    /// `%m`
    Month,
    /// `%d`
    Day,
    /// `%e` (space padded)
    DaySpace,
    /// `%j`
    DayOfYear,
    /// `%H`
    Hour,
    /// `%M`
    Minute,
    /// `%S`
    Second,
    /// `%E<n>S`: seconds with `n` fraction digits (`%E*S`: 9, trailing zeros trimmed).
    SecondFrac {
        digits: u8,
        trim: bool,
    },
    /// `%<n>f` / `%f`: fraction of the second with `n` digits (9 by default).
    Frac(u8),
    /// `%s`: seconds since the epoch.
    Epoch,
    /// `%a`
    WeekdayShort,
    /// `%b`
    MonthShort,
    /// `%z`: always `+0000` (UTC).
    Offset,
    /// `%Z`: always `UTC`.
    Zone,
}

impl TimeFormat {
    pub fn envoy_default() -> TimeFormat {
        parse_time_format("%Y-%m-%dT%H:%M:%E3SZ").unwrap_or(TimeFormat(Vec::new()))
    }
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse a header value template.
pub fn parse(raw: &str) -> Result<FormatString, FormatError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = raw[i..].find('%') else {
            lit.push_str(&raw[i..]);
            break;
        };
        lit.push_str(&raw[i..i + off]);
        let start = i + off;
        if bytes.get(start + 1) == Some(&b'%') {
            lit.push('%');
            i = start + 2;
            continue;
        }
        let (piece, next) = parse_command(raw, start)?;
        if !lit.is_empty() {
            pieces.push(FormatPiece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(piece);
        i = next;
    }
    if !lit.is_empty() {
        pieces.push(FormatPiece::Literal(lit));
    }
    Ok(FormatString { raw: raw.to_string(), pieces })
}

/// Parse `%NAME(arg):N%` starting at the `%` at `start`; returns the piece and the
/// index after the closing `%`.
fn parse_command(raw: &str, start: usize) -> Result<(FormatPiece, usize), FormatError> {
    let bytes = raw.as_bytes();
    let bad = || {
        FormatError(format!(
            "invalid format string `{raw}`: no valid command at position {start} (write `%%` for a literal `%`)"
        ))
    };
    let mut j = start + 1;
    while j < bytes.len() && (bytes[j].is_ascii_uppercase() || bytes[j].is_ascii_digit() || bytes[j] == b'_') {
        j += 1;
    }
    if j == start + 1 {
        return Err(bad());
    }
    let name = &raw[start + 1..j];
    let mut arg = None;
    if bytes.get(j) == Some(&b'(') {
        let close = raw[j..].find(')').ok_or_else(bad)? + j;
        arg = Some(&raw[j + 1..close]);
        j = close + 1;
    }
    let mut max_len = None;
    if bytes.get(j) == Some(&b':') {
        let k = j + 1;
        let mut e = k;
        while e < bytes.len() && bytes[e].is_ascii_digit() {
            e += 1;
        }
        if e == k {
            return Err(bad());
        }
        max_len = Some(raw[k..e].parse::<usize>().map_err(|_| bad())?);
        j = e;
    }
    if bytes.get(j) != Some(&b'%') {
        return Err(bad());
    }
    let command = command(name, arg)?;
    Ok((FormatPiece::Command { command, max_len }, j + 1))
}

fn command(name: &str, arg: Option<&str>) -> Result<Command, FormatError> {
    let simple = match name {
        "DOWNSTREAM_REMOTE_ADDRESS" => Some(Command::DownstreamRemoteAddress),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Some(Command::DownstreamRemoteAddressWithoutPort),
        "DOWNSTREAM_REMOTE_PORT" => Some(Command::DownstreamRemotePort),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => Some(Command::DownstreamDirectRemoteAddress),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => Some(Command::DownstreamDirectRemoteAddressWithoutPort),
        "DOWNSTREAM_DIRECT_REMOTE_PORT" => Some(Command::DownstreamDirectRemotePort),
        "DOWNSTREAM_LOCAL_ADDRESS" => Some(Command::DownstreamLocalAddress),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Some(Command::DownstreamLocalAddressWithoutPort),
        "DOWNSTREAM_LOCAL_PORT" => Some(Command::DownstreamLocalPort),
        "UPSTREAM_REMOTE_ADDRESS" => Some(Command::UpstreamRemoteAddress),
        "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Some(Command::UpstreamRemoteAddressWithoutPort),
        "UPSTREAM_REMOTE_PORT" => Some(Command::UpstreamRemotePort),
        "UPSTREAM_CLUSTER" => Some(Command::UpstreamCluster),
        "PROTOCOL" => Some(Command::Protocol),
        "REQUESTED_SERVER_NAME" => Some(Command::RequestedServerName),
        "ROUTE_NAME" => Some(Command::RouteName),
        "RESPONSE_CODE" => Some(Command::ResponseCode),
        "RESPONSE_FLAGS" => Some(Command::ResponseFlags),
        "BYTES_RECEIVED" => Some(Command::BytesReceived),
        "BYTES_SENT" => Some(Command::BytesSent),
        "DURATION" => Some(Command::Duration),
        "UPSTREAM_HOST" => Some(Command::UpstreamHost),
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Some(Command::UpstreamRequestAttemptCount),
        "HOSTNAME" => Some(Command::Hostname),
        _ => None,
    };
    if let Some(c) = simple {
        if arg.is_some() {
            return Err(FormatError(format!("%{name}% does not take an argument")));
        }
        return Ok(c);
    }
    match name {
        "START_TIME" => {
            let format = match arg {
                None | Some("") => TimeFormat::envoy_default(),
                Some(f) => parse_time_format(f)?,
            };
            Ok(Command::StartTime(format))
        }
        "DYNAMIC_METADATA" => {
            let mut parts = arg.unwrap_or("").split(':');
            let namespace = parts.next().unwrap_or("").to_string();
            if namespace.is_empty() {
                return Err(FormatError(
                    "%DYNAMIC_METADATA% needs a namespace: %DYNAMIC_METADATA(NAMESPACE:KEY*)%".into(),
                ));
            }
            let path: Vec<String> = parts.map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(FormatError(format!("empty key in %DYNAMIC_METADATA({})%", arg.unwrap_or(""))));
            }
            Ok(Command::DynamicMetadata { namespace, path })
        }
        "GRPC_STATUS" => match arg {
            None | Some("") | Some("CAMEL_STRING") => Ok(Command::GrpcStatus(GrpcStatusFormat::CamelString)),
            Some("SNAKE_STRING") => Ok(Command::GrpcStatus(GrpcStatusFormat::SnakeString)),
            Some("NUMBER") => Ok(Command::GrpcStatus(GrpcStatusFormat::Number)),
            Some(other) => {
                Err(FormatError(format!("GRPC_STATUS only supports CAMEL_STRING, SNAKE_STRING or NUMBER, not {other}")))
            }
        },
        "REQ" | "RESP" => {
            let Some(arg) = arg else {
                return Err(FormatError(format!("%{name}% needs a header name: %{name}(name)%")));
            };
            let mut parts = arg.split('?');
            let main = parts.next().unwrap_or("").to_ascii_lowercase();
            let alt = parts.next().map(str::to_ascii_lowercase);
            if parts.next().is_some() {
                return Err(FormatError(format!("more than 1 alternative header specified in %{name}({arg})%")));
            }
            if main.is_empty() || alt.as_deref() == Some("") {
                return Err(FormatError(format!("empty header name in %{name}({arg})%")));
            }
            if name == "REQ" {
                Ok(Command::Req { main, alt })
            } else {
                Ok(Command::Resp { main, alt })
            }
        }
        _ => Err(FormatError(format!("Not supported field in StreamInfo: {name}"))),
    }
}

/// Parse a strftime-style format for `%START_TIME(...)%`.
pub fn parse_time_format(f: &str) -> Result<TimeFormat, FormatError> {
    let mut items = Vec::new();
    let mut lit = String::new();
    let mut chars = f.chars().peekable();
    let flush = |lit: &mut String, items: &mut Vec<TimeItem>| {
        if !lit.is_empty() {
            items.push(TimeItem::Literal(std::mem::take(lit)));
        }
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let spec = chars.next().ok_or_else(|| FormatError(format!("START_TIME format `{f}` ends with `%`")))?;
        let item = match spec {
            '%' => {
                lit.push('%');
                continue;
            }
            'Y' => TimeItem::Year,
            'y' => TimeItem::YearShort,
            'm' => TimeItem::Month,
            'd' => TimeItem::Day,
            'e' => TimeItem::DaySpace,
            'j' => TimeItem::DayOfYear,
            'H' => TimeItem::Hour,
            'M' => TimeItem::Minute,
            'S' => TimeItem::Second,
            's' => TimeItem::Epoch,
            'a' => TimeItem::WeekdayShort,
            'b' => TimeItem::MonthShort,
            'z' => TimeItem::Offset,
            'Z' => TimeItem::Zone,
            'f' => TimeItem::Frac(9),
            'T' => {
                flush(&mut lit, &mut items);
                items.extend([
                    TimeItem::Hour,
                    TimeItem::Literal(":".into()),
                    TimeItem::Minute,
                    TimeItem::Literal(":".into()),
                    TimeItem::Second,
                ]);
                continue;
            }
            'F' => {
                flush(&mut lit, &mut items);
                items.extend([
                    TimeItem::Year,
                    TimeItem::Literal("-".into()),
                    TimeItem::Month,
                    TimeItem::Literal("-".into()),
                    TimeItem::Day,
                ]);
                continue;
            }
            d @ '1'..='9' if chars.peek() == Some(&'f') => {
                chars.next();
                TimeItem::Frac(d as u8 - b'0')
            }
            'E' => {
                let n = chars.next();
                let s = chars.next();
                match (n, s) {
                    (Some('*'), Some('S')) => TimeItem::SecondFrac { digits: 9, trim: true },
                    (Some(d @ '0'..='9'), Some('S')) => TimeItem::SecondFrac { digits: d as u8 - b'0', trim: false },
                    _ => return Err(FormatError(format!("unsupported `%E` specifier in START_TIME format `{f}`"))),
                }
            }
            other => return Err(FormatError(format!("unsupported specifier `%{other}` in START_TIME format `{f}`"))),
        };
        flush(&mut lit, &mut items);
        items.push(item);
    }
    flush(&mut lit, &mut items);
    Ok(TimeFormat(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_escapes() {
        let f = parse("a%%b").unwrap();
        assert_eq!(f.as_literal(), Some("a%b"));
        assert_eq!(parse("").unwrap().as_literal(), Some(""));
    }

    #[test]
    fn commands_with_args_and_length() {
        let f = parse("ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% id=%REQ(X-Request-Id?x-alt):8%").unwrap();
        assert_eq!(f.pieces.len(), 4);
        assert_eq!(
            f.pieces[1],
            FormatPiece::Command { command: Command::DownstreamRemoteAddressWithoutPort, max_len: None }
        );
        assert_eq!(
            f.pieces[3],
            FormatPiece::Command {
                command: Command::Req { main: "x-request-id".into(), alt: Some("x-alt".into()) },
                max_len: Some(8)
            }
        );
        assert!(f.as_literal().is_none());
    }

    #[test]
    fn errors() {
        assert!(parse("%FOO%").unwrap_err().0.contains("Not supported field in StreamInfo: FOO"));
        assert!(parse("50%").is_err());
        assert!(parse("%PROTOCOL").is_err());
        assert!(parse("%REQ%").is_err());
        assert!(parse("%REQ(a?b?c)%").is_err());
        assert!(parse("%PROTOCOL(x)%").is_err());
        assert!(parse("%START_TIME(%Q)%").is_err());
    }

    #[test]
    fn start_time_formats() {
        let f = parse("%START_TIME%").unwrap();
        let FormatPiece::Command { command: Command::StartTime(t), .. } = &f.pieces[0] else { panic!() };
        assert_eq!(t, &TimeFormat::envoy_default());
        assert_eq!(
            parse_time_format("%s.%3f").unwrap().0,
            vec![TimeItem::Epoch, TimeItem::Literal(".".into()), TimeItem::Frac(3)]
        );
    }
}

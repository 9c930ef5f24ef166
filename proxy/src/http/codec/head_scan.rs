//! Finding the end of a message head, incrementally.
//!
//! [`HeadScan`] walks the line feeds of a growing buffer with `memchr`, remembering how
//! far it got, so a head that trickles in one byte at a time costs linear work, not
//! quadratic. On the way it enforces what httparse is lenient about: every LF must be
//! preceded by CR (a bare LF is an error, never a line ending), and the head must end
//! within the size limit. Empty lines before the start line are skipped, as Envoy's
//! parser does. It never copies.

/// Where a complete head lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadBounds {
    /// First byte of the start line (after skipped empty lines).
    pub start: usize,
    /// End of the start line, excluding its CRLF.
    pub start_line_end: usize,
    /// One past the blank line's LF: the head's length from the buffer's start.
    pub end: usize,
    /// Number of header lines between the start line and the blank line.
    pub header_lines: usize,
}

/// Why a head cannot be complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// An LF without a CR before it.
    BareLf,
    /// No end of head within the limit.
    TooLarge,
}

/// Incremental search state; reset between messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScan {
    /// Bytes of the buffer already examined.
    scanned: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Start and end of the start line once seen.
    start_line: Option<(usize, usize)>,
    header_lines: usize,
}

impl HeadScan {
    pub fn reset(&mut self) {
        *self = HeadScan::default();
    }

    /// Scan `buf` (which must begin with the bytes given to earlier calls since the
    /// last reset) for the end of a head of at most `limit` bytes.
    pub fn scan(&mut self, buf: &[u8], limit: usize) -> Result<Option<HeadBounds>, ScanError> {
        if self.scanned > buf.len() {
            // The caller broke the contract (gave a shorter buffer): start over rather
            // than index out of bounds.
            self.reset();
        }
        let window_end = buf.len().min(limit);
        let from = self.scanned;
        if from < window_end {
            for rel in memchr::memchr_iter(b'\n', &buf[from..window_end]) {
                let lf = from + rel;
                if lf == 0 || buf[lf - 1] != b'\r' {
                    return Err(ScanError::BareLf);
                }
                let line_end = lf - 1;
                let line_start = self.line_start;
                self.line_start = lf + 1;
                if line_end == line_start {
                    match self.start_line {
                        // An empty line before the start line is skipped.
                        None => continue,
                        Some((start, start_line_end)) => {
                            let bounds =
                                HeadBounds { start, start_line_end, end: lf + 1, header_lines: self.header_lines };
                            self.reset();
                            return Ok(Some(bounds));
                        }
                    }
                }
                match self.start_line {
                    None => self.start_line = Some((line_start, line_end)),
                    Some(_) => self.header_lines += 1,
                }
            }
            self.scanned = window_end;
        }
        if buf.len() >= limit {
            // `limit` bytes hold no end of head: whatever follows, the head is too large.
            return Err(ScanError::TooLarge);
        }
        Ok(None)
    }
}

/// httparse header arrays larger than this are freed after use instead of kept.
const MAX_KEPT_SCRATCH: usize = 1024;

/// Give back httparse's header array with its allocation but without the borrows of the
/// last buffer: emptied, it is re-typed in place (same layout, so `collect` reuses the
/// allocation; a test checks it).
pub(crate) fn recycle_headers(mut v: Vec<httparse::Header<'_>>) -> Vec<httparse::Header<'static>> {
    v.clear();
    let v: Vec<httparse::Header<'static>> = v.into_iter().map(|_| httparse::EMPTY_HEADER).collect();
    if v.capacity() > MAX_KEPT_SCRATCH {
        return Vec::new();
    }
    v
}

//! Where access log lines go: files (opened once per path and shared, as Envoy's
//! `AccessLogManager` does), stdout or stderr.
//!
//! Workers never write a line at a time: each worker appends formatted lines to its
//! own [`AccessLogBuffer`] and flushes it once per event-loop round, one `write` per
//! sink. Files are opened with `O_APPEND`, so whole buffers from different workers
//! never interleave inside a line. `SIGUSR1` reopens every file (log rotation), as in
//! Envoy. A failed write is counted and reported, never fatal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sluice_config::access_log::AccessLogSink;

/// An open log destination.
#[derive(Debug)]
pub struct Sink {
    target: Target,
    /// Writes that failed (disk full, closed pipe ...).
    pub write_failed: AtomicU64,
    /// Buffers written whole.
    pub write_completed: AtomicU64,
}

#[derive(Debug)]
enum Target {
    File { path: String, file: Mutex<File> },
    Stdout,
    Stderr,
}

/// Envoy's `filesystem.*` counters, process-wide (touched once per flush, not per
/// request): buffers written, writes failed, reopens failed.
pub static WRITE_COMPLETED: AtomicU64 = AtomicU64::new(0);
pub static WRITE_FAILED: AtomicU64 = AtomicU64::new(0);
pub static REOPEN_FAILED: AtomicU64 = AtomicU64::new(0);

/// The `filesystem.*` counters with their names.
pub fn counters() -> [(&'static str, u64); 3] {
    [
        ("filesystem.write_completed", WRITE_COMPLETED.load(Ordering::Relaxed)),
        ("filesystem.write_failed", WRITE_FAILED.load(Ordering::Relaxed)),
        ("filesystem.reopen_failed", REOPEN_FAILED.load(Ordering::Relaxed)),
    ]
}

/// Every sink alive, so files are shared by path and reopened on `SIGUSR1`.
static SINKS: Mutex<Vec<Weak<Sink>>> = Mutex::new(Vec::new());

fn open_file(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open access log file {path}: {e}"))
}

impl Sink {
    /// The sink for `target`: an already open one for the same path or stream, or a
    /// new one. Called while a config is compiled (not on a worker).
    pub fn open(target: &AccessLogSink) -> Result<Arc<Sink>, String> {
        let mut sinks = SINKS.lock().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|w| w.strong_count() > 0);
        for s in sinks.iter().filter_map(Weak::upgrade) {
            let same = match (&s.target, target) {
                (Target::File { path, .. }, AccessLogSink::File(p)) => path == p,
                (Target::Stdout, AccessLogSink::Stdout) | (Target::Stderr, AccessLogSink::Stderr) => true,
                _ => false,
            };
            if same {
                return Ok(s);
            }
        }
        let target = match target {
            AccessLogSink::File(path) => Target::File { path: path.clone(), file: Mutex::new(open_file(path)?) },
            AccessLogSink::Stdout => Target::Stdout,
            AccessLogSink::Stderr => Target::Stderr,
        };
        let sink = Arc::new(Sink { target, write_failed: AtomicU64::new(0), write_completed: AtomicU64::new(0) });
        sinks.push(Arc::downgrade(&sink));
        Ok(sink)
    }

    /// Write a buffer of whole lines.
    pub fn write(&self, buf: &[u8]) {
        let r = match &self.target {
            Target::File { file, .. } => {
                let f = file.lock().unwrap_or_else(|e| e.into_inner());
                (&*f).write_all(buf)
            }
            Target::Stdout => std::io::stdout().lock().write_all(buf),
            Target::Stderr => std::io::stderr().lock().write_all(buf),
        };
        match r {
            Ok(()) => {
                self.write_completed.fetch_add(1, Ordering::Relaxed);
                WRITE_COMPLETED.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                WRITE_FAILED.fetch_add(1, Ordering::Relaxed);
                let n = self.write_failed.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(sink = %self.name(), failures = n + 1, "access log write failed: {e}");
                }
            }
        }
    }

    /// The file path, `stdout` or `stderr`.
    pub fn name(&self) -> &str {
        match &self.target {
            Target::File { path, .. } => path,
            Target::Stdout => "stdout",
            Target::Stderr => "stderr",
        }
    }

    fn reopen(&self) -> Result<(), String> {
        if let Target::File { path, file } = &self.target {
            let new = open_file(path)?;
            *file.lock().unwrap_or_else(|e| e.into_inner()) = new;
        }
        Ok(())
    }
}

/// Reopen every access log file (`SIGUSR1`); returns the files that failed.
pub fn reopen_all() -> Vec<String> {
    let sinks: Vec<Arc<Sink>> =
        SINKS.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
    let failed: Vec<String> = sinks.iter().filter_map(|s| s.reopen().err()).collect();
    REOPEN_FAILED.fetch_add(failed.len() as u64, Ordering::Relaxed);
    failed
}

/// A worker's formatted lines waiting for the end of the round.
#[derive(Debug, Default)]
pub struct AccessLogBuffer {
    pending: Vec<(Arc<Sink>, Vec<u8>)>,
}

/// Flush early when one sink has this much buffered.
const FLUSH_AT: usize = 64 * 1024;

impl AccessLogBuffer {
    /// The buffer lines for `sink` are appended to.
    pub fn for_sink(&mut self, sink: &Arc<Sink>) -> &mut Vec<u8> {
        let i = match self.pending.iter().position(|(s, _)| Arc::ptr_eq(s, sink)) {
            Some(i) => i,
            None => {
                self.pending.push((Arc::clone(sink), Vec::with_capacity(4096)));
                self.pending.len() - 1
            }
        };
        let (s, buf) = &mut self.pending[i];
        if buf.len() >= FLUSH_AT {
            s.write(buf);
            buf.clear();
        }
        buf
    }

    /// Write everything buffered; sinks no config uses any more are let go.
    pub fn flush(&mut self) {
        for (sink, buf) in &mut self.pending {
            if !buf.is_empty() {
                sink.write(buf);
                buf.clear();
            }
        }
        self.pending.retain(|(s, _)| Arc::strong_count(s) > 1);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.iter().all(|(_, b)| b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_shared_by_path_appended_and_reopened() {
        let dir = std::env::temp_dir().join(format!("sluice-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log").to_string_lossy().into_owned();
        let a = Sink::open(&AccessLogSink::File(path.clone())).unwrap();
        let b = Sink::open(&AccessLogSink::File(path.clone())).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut buf = AccessLogBuffer::default();
        buf.for_sink(&a).extend_from_slice(b"one\n");
        buf.for_sink(&b).extend_from_slice(b"two\n");
        buf.flush();
        assert!(buf.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        // Rotation: the file is moved away, SIGUSR1 reopens a fresh one.
        let rotated = dir.join("a.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        assert!(reopen_all().is_empty());
        buf.for_sink(&a).extend_from_slice(b"three\n");
        buf.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(a.write_completed.load(Ordering::Relaxed), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let e = Sink::open(&AccessLogSink::File("/nonexistent-dir/x.log".into())).unwrap_err();
        assert!(e.contains("cannot open access log file /nonexistent-dir/x.log"), "{e}");
    }
}

//! Noticing that a resource file was replaced, by polling on the main thread.
//!
//! Envoy watches a path source with inotify for `IN_MOVED_TO` (the file, or with
//! `watched_directory` the directory), so an update is a file moved into place. sluice
//! polls instead: each round of the main loop (at most every [`POLL_INTERVAL`]) it
//! `stat`s the file, following symlinks, and the watched directory, and compares
//! device, inode, size and modification time with what it saw last. A rename into place
//! gives the path a new inode; a symlink swap (Kubernetes ConfigMaps, with
//! `watched_directory`) changes what the path resolves to and the directory's mtime.
//! Polling costs one or two `stat` calls per file per interval and needs neither
//! `unsafe` (this crate forbids it) nor a new dependency nor a thread, and it keeps the
//! update on the main thread, where SIGHUP reloads run; an update is seen within
//! [`POLL_INTERVAL`] of the move instead of at once. A file rewritten in place is also
//! seen (Envoy would miss it); if it was caught half-written it fails to parse, is
//! counted as `update_failure`, and the next change is read again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What identifies one version of a file: device, inode, size, mtime (ns).
type Stamp = Option<(u64, u64, u64, i128)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())))
}

/// The watch on one resource file.
#[derive(Debug, Clone)]
pub struct FileWatch {
    file: PathBuf,
    directory: Option<PathBuf>,
    seen: (Stamp, Stamp),
    next_poll: Option<Instant>,
}

impl FileWatch {
    /// Watch `file` (and `directory`, when given) from its state now: the caller has
    /// just read it.
    pub fn new(file: PathBuf, directory: Option<PathBuf>) -> FileWatch {
        let mut w = FileWatch { file, directory, seen: (None, None), next_poll: None };
        w.seen = w.current();
        w
    }

    fn current(&self) -> (Stamp, Stamp) {
        (stamp(&self.file), self.directory.as_deref().and_then(stamp))
    }

    /// Whether the file changed since the last call that returned true (or since
    /// [`FileWatch::new`]); checks at most every [`POLL_INTERVAL`]. A file that
    /// disappeared is no change: the last one read stays in force, as in Envoy.
    pub fn changed(&mut self, now: Instant) -> bool {
        if self.next_poll.is_some_and(|t| now < t) {
            return false;
        }
        self.next_poll = Some(now + POLL_INTERVAL);
        let current = self.current();
        if current.0.is_none() || current == self.seen {
            return false;
        }
        self.seen = current;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_moved_into_place_is_a_change_once() {
        let dir = std::env::temp_dir().join(format!("sluice-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lds.yaml");
        std::fs::write(&file, "a").unwrap();
        let mut w = FileWatch::new(file.clone(), None);
        let t0 = Instant::now();
        assert!(!w.changed(t0));
        std::fs::write(dir.join("tmp"), "bb").unwrap();
        std::fs::rename(dir.join("tmp"), &file).unwrap();
        // Not before the interval has passed, then exactly once.
        assert!(!w.changed(t0 + Duration::from_millis(1)));
        assert!(w.changed(t0 + POLL_INTERVAL));
        assert!(!w.changed(t0 + POLL_INTERVAL * 2));
        std::fs::remove_file(&file).unwrap();
        assert!(!w.changed(t0 + POLL_INTERVAL * 3), "a removed file keeps the last one in force");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

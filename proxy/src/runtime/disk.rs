//! A disk layer: a directory tree read into runtime values, and the watch that tells
//! when to read it again.
//!
//! As Envoy's `DiskLayer`: every regular file under the layer's directory is one key,
//! its path below the directory with `/` replaced by `.` (`envoy/health_check/
//! min_interval` is `health_check.min_interval` for a layer on `envoy`); lines that
//! start with `#` are comments; the last line loses its trailing whitespace. At most 16
//! directory levels are walked; deeper trees fail the layer, which is then left out of
//! the snapshot (Envoy counts `runtime.load_error`). A missing directory is an empty
//! layer.
//!
//! Envoy reloads when `symlink_root` is replaced (a `MovedTo` event on it: the usual
//! atomic symlink swap). sluice's main thread checks the root's identity (device,
//! inode, modification time of the link itself, and where it points) once per main
//! loop round, so a swap is seen within that round (at most 100 ms); a file changed in
//! place under an unchanged root is not, as in Envoy.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sluice_config::runtime::Entry;

/// Envoy's `MaxWalkDepth`.
const MAX_WALK_DEPTH: u32 = 16;
/// A runtime file bigger than this is an error (values are small; this bounds a
/// misplaced large file).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Read the layer under `dir`. A missing directory is an empty layer.
pub fn read_layer(dir: &Path) -> Result<BTreeMap<String, Entry>, String> {
    let mut values = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(values);
    }
    walk(dir, "", 1, &mut values)?;
    Ok(values)
}

fn walk(dir: &Path, prefix: &str, depth: u32, out: &mut BTreeMap<String, Entry>) -> Result<(), String> {
    if depth > MAX_WALK_DEPTH {
        return Err(format!("Walk recursion depth exceeded {MAX_WALK_DEPTH}"));
    }
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        // Follow symlinks (a mounted tree is often made of them); a dangling one is skipped.
        let Ok(meta) = fs::metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, &key, depth + 1, out)?;
        } else if meta.is_file() {
            if meta.len() > MAX_FILE_BYTES {
                return Err(format!("{} is larger than {MAX_FILE_BYTES} bytes", path.display()));
            }
            let text = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.insert(key, Entry::parse(&file_value(&String::from_utf8_lossy(&text))));
        }
    }
    Ok(())
}

/// A file's value: comment lines (`#...`) dropped, the last line right-trimmed.
fn file_value(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    let mut value = String::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if i + 1 == lines.len() {
            value.push_str(line.trim_end());
        } else {
            value.push_str(line);
            value.push('\n');
        }
    }
    value
}

/// What identifies the current `symlink_root`: replaced roots differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootIdentity {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    target: Option<PathBuf>,
}

/// The identity of `root` now (`None`: it does not exist).
pub fn identity(root: &Path) -> io::Result<Option<RootIdentity>> {
    match fs::symlink_metadata(root) {
        Ok(m) => Ok(Some(RootIdentity {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            target: fs::read_link(root).ok(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_whitespace() {
        assert_eq!(file_value("# placeholder\n"), "");
        assert_eq!(file_value("42 \n"), "42");
        assert_eq!(file_value("# c\n5\n"), "5");
        assert_eq!(file_value("a\nb  "), "a\nb");
    }

    #[test]
    fn tree_to_dotted_keys_and_depth_bound() {
        let dir = std::env::temp_dir().join(format!("sluice-rt-disk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("health_check")).unwrap();
        fs::write(dir.join("health_check/min_interval"), "5\n").unwrap();
        fs::write(dir.join("flag"), "# comment\ntrue\n").unwrap();
        let v = read_layer(&dir).unwrap();
        assert_eq!(v.keys().collect::<Vec<_>>(), ["flag", "health_check.min_interval"]);
        assert_eq!(v["health_check.min_interval"].uint_value, Some(5));
        assert_eq!(v["flag"].bool_value, Some(true));
        assert!(read_layer(&dir.join("missing")).unwrap().is_empty());
        let mut deep = dir.join("deep");
        for i in 0..17 {
            deep = deep.join(i.to_string());
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("k"), "1").unwrap();
        assert!(read_layer(&dir).unwrap_err().contains("depth exceeded"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_swapped_symlink_changes_identity() {
        let dir = std::env::temp_dir().join(format!("sluice-rt-id-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("v1")).unwrap();
        fs::create_dir_all(dir.join("v2")).unwrap();
        let root = dir.join("current");
        assert_eq!(identity(&root).unwrap(), None);
        std::os::unix::fs::symlink(dir.join("v1"), &root).unwrap();
        let first = identity(&root).unwrap();
        assert_eq!(identity(&root).unwrap(), first, "stable while nothing changes");
        let tmp = dir.join("next");
        std::os::unix::fs::symlink(dir.join("v2"), &tmp).unwrap();
        fs::rename(&tmp, &root).unwrap();
        assert_ne!(identity(&root).unwrap(), first);
        fs::remove_dir_all(&dir).unwrap();
    }
}

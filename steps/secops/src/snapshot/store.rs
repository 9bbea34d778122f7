//! The snapshot directory: timestamped names that sort by time, atomic writes (a temporary
//! file in the same directory, synced, then renamed), and keeping the last N.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const PREFIX: &str = "vault-snapshot-";
const SUFFIX: &str = ".snap";

/// `vault-snapshot-20261205T081500123Z.snap`: UTC, milliseconds; names sort by time.
pub fn file_name(at: jiff::Timestamp) -> String {
    format!(
        "{PREFIX}{}{:03}Z{SUFFIX}",
        at.strftime("%Y%m%dT%H%M%S"),
        at.subsec_millisecond()
    )
}

fn is_ours(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

fn cannot(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::precondition(
        format!("file {}", path.display()),
        format!("cannot {what} ({e})"),
        "check the snapshot volume (mounted, writable, not full), then run again; earlier snapshots are kept",
    )
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let res = (|| {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself reaches the disk with the directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot("write", path, e)
    })
}

/// Removes all but the newest `keep` snapshots (and temporary files a killed run left);
/// returns the names removed, oldest first.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<String>> {
    let mut ours: Vec<String> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| cannot("list", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_ours(&name) {
            ours.push(name);
        } else if name.starts_with(&format!(".{PREFIX}")) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    ours.sort();
    let drop = ours.len().saturating_sub(keep);
    let removed: Vec<String> = ours.into_iter().take(drop).collect();
    for name in &removed {
        let p: PathBuf = dir.join(name);
        std::fs::remove_file(&p).map_err(|e| cannot("remove", &p, e))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_only_the_last_n_stay() {
        let t0: jiff::Timestamp = "2026-12-05T08:00:00.5Z".parse().unwrap();
        assert_eq!(file_name(t0), "vault-snapshot-20261205T080000500Z.snap");
        let d = tempfile::tempdir().unwrap();
        for m in 0..5 {
            let t = t0 + jiff::SignedDuration::from_mins(m);
            write_atomic(&d.path().join(file_name(t)), b"x").unwrap();
        }
        std::fs::write(d.path().join("unrelated.txt"), b"keep me").unwrap();
        std::fs::write(d.path().join(".vault-snapshot-x.snap.tmp"), b"").unwrap();
        let removed = prune(d.path(), 2).unwrap();
        assert_eq!(removed.len(), 3);
        assert!(removed[0].contains("T0800"), "oldest first: {removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "unrelated.txt",
                "vault-snapshot-20261205T080300500Z.snap",
                "vault-snapshot-20261205T080400500Z.snap"
            ]
        );
    }
}

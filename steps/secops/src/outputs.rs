//! Argo output parameters: one small file per parameter in `--outputs-dir`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct Outputs {
    dir: Option<PathBuf>,
}

impl Outputs {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Outputs { dir }
    }

    /// Writes atomically (temp file + rename) so Argo never reads half a file.
    pub fn write(&self, name: &str, contents: &str) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        write_atomic(dir, name, contents).map_err(|e| {
            Error::Usage(format!(
                "cannot write output parameter {name} in {}: {e}; check --outputs-dir is a writable directory",
                dir.display()
            ))
        })
    }

    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let s = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
        self.write(name, &s)
    }
}

fn write_atomic(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_files_and_nothing_without_a_dir() {
        let d = tempfile::tempdir().unwrap();
        let o = Outputs::new(Some(d.path().join("out")));
        o.write("count", "3").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("out/count")).unwrap(),
            "3"
        );
        Outputs::new(None).write("count", "3").unwrap();
    }
}

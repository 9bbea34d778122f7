//! Argo output parameters: one small file per parameter in `--outputs-dir`.

use std::io::Write as _;
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
        write_atomic(dir, name, contents).map_err(|e| cannot_write(name, dir, e))
    }

    /// Serialises straight into the file (buffered), so a list of 10,000 references is
    /// never also held as one string.
    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        write_atomic_with(dir, name, |w| {
            serde_json::to_writer(w, value).map_err(std::io::Error::from)
        })
        .map_err(|e| cannot_write(name, dir, e))
    }

    /// A JSON array of items that are each JSON text already, written without joining them
    /// into one string first.
    pub fn write_json_items(&self, name: &str, items: &[String]) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        write_atomic_with(dir, name, |w| {
            w.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(item.as_bytes())?;
            }
            w.write_all(b"]")
        })
        .map_err(|e| cannot_write(name, dir, e))
    }
}

fn cannot_write(name: &str, dir: &Path, e: std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write output parameter {name} in {}: {e}; check --outputs-dir is a writable directory",
        dir.display()
    ))
}

fn write_atomic(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    write_atomic_with(dir, name, |w| w.write_all(contents.as_bytes()))
}

fn write_atomic_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    fill(&mut w)?;
    w.into_inner().map_err(|e| e.into_error())?;
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

    #[test]
    fn json_is_written_whole_and_items_make_an_array() {
        let d = tempfile::tempdir().unwrap();
        let o = Outputs::new(Some(d.path().to_owned()));
        let read = |n: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(d.path().join(n)).unwrap()).unwrap()
        };
        o.write_json("refs.json", &vec![("a", 1), ("b", 2)])
            .unwrap();
        assert_eq!(read("refs.json"), serde_json::json!([["a", 1], ["b", 2]]));
        o.write_json_items("result.json", &[r#"{"a":1}"#.into(), "[2]".into()])
            .unwrap();
        assert_eq!(read("result.json"), serde_json::json!([{"a": 1}, [2]]));
        o.write_json_items("empty.json", &[]).unwrap();
        assert_eq!(read("empty.json"), serde_json::json!([]));
        assert!(
            !d.path().join(".refs.json.tmp").exists(),
            "no temp file left"
        );
    }
}

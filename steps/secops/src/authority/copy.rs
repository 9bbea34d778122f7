//! The unseal material outside the cluster: a copy of the Secret's age ciphertext in a file
//! (an Argo output artifact, committed to Git like a SOPS file: ciphertext for the operators'
//! age keys, no decryption key). Plaintext material is never copied. unseal and a restore
//! read it back with `--material-file`.

use std::path::Path;

use super::{has_material, open_age, Material, Store, KEY_AGE};
use crate::error::{Error, Result};
use crate::kube::Kube;

/// Writes the stored ciphertext to `path` (atomically); nothing when no material is stored.
pub async fn write_copy(kube: &Kube, store: &Store, path: &Path) -> Result<()> {
    let object = store.object();
    let Some(s) = kube
        .get_secret(&store.namespace, &store.name)
        .await?
        .filter(has_material)
    else {
        tracing::info!(%object, "no unseal material stored: no copy written");
        return Ok(());
    };
    let Some(cipher) = s.data.get(KEY_AGE).filter(|v| !v.is_empty()) else {
        return Err(Error::precondition(
            &object,
            "holds plaintext unseal material, which never leaves the cluster",
            "drop --material-out, or re-initialise with --age-recipient so the material is ciphertext",
        ));
    };
    crate::snapshot::store::write_atomic(path, cipher.expose())?;
    tracing::info!(%object, file = %path.display(), "unseal material copied (age ciphertext)");
    Ok(())
}

/// Reads and decrypts a copy written by [`write_copy`].
pub fn read_copy(path: &Path, identity_file: Option<&std::path::PathBuf>) -> Result<Material> {
    let cipher = std::fs::read(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read --material-file {}: {e}",
            path.display()
        ))
    })?;
    if cipher.is_empty() {
        return Err(Error::Usage(format!(
            "--material-file {} is empty",
            path.display()
        )));
    }
    open_age(&cipher, &format!("file {}", path.display()), identity_file)
}

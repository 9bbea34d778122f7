//! A raft snapshot is a gzipped tar whose `SHA256SUMS` member lists the sha256 of every other
//! member (`<hex>  <name>` per line, as `sha256sum` writes it). A snapshot is good when every
//! listed member is present once and matches, and the list is not empty.

use std::collections::BTreeMap;
use std::io::Read;

use sha2::{Digest, Sha256};

/// The member holding the checksums.
pub const SUMS: &str = "SHA256SUMS";

/// What a verified snapshot holds: how many members the checksums covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub checked: usize,
}

/// Why a snapshot is not good; never quotes member contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("is not a gzipped tar archive ({0})")]
    Archive(String),
    #[error("has no {SUMS} member")]
    NoSums,
    #[error("lists no member in {SUMS}")]
    EmptySums,
    #[error("has a malformed {SUMS} line {0}")]
    BadLine(usize),
    #[error("lacks member {0}, which {SUMS} lists")]
    Missing(String),
    #[error("member {0} does not match its sha256 in {SUMS}")]
    Mismatch(String),
    #[error("holds member {0} twice")]
    Duplicate(String),
}

/// Reads the archive once, hashing each member, then checks the list against the hashes.
pub fn verify(archive: &[u8]) -> Result<Verified, Invalid> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz);
    let mut hashes: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    let mut sums: Option<Vec<u8>> = None;
    let entries = tar.entries().map_err(|e| Invalid::Archive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Invalid::Archive(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| Invalid::Archive(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name == SUMS {
            let mut body = Vec::new();
            entry
                .read_to_end(&mut body)
                .map_err(|e| Invalid::Archive(e.to_string()))?;
            if sums.replace(body).is_some() {
                return Err(Invalid::Duplicate(name));
            }
            continue;
        }
        let mut h = Sha256::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| Invalid::Archive(e.to_string()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        if hashes.insert(name.clone(), h.finalize().into()).is_some() {
            return Err(Invalid::Duplicate(name));
        }
    }
    let sums = sums.ok_or(Invalid::NoSums)?;
    let text = String::from_utf8(sums).map_err(|_| Invalid::BadLine(1))?;
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (hex, name) = line
            .split_once(char::is_whitespace)
            .ok_or(Invalid::BadLine(i + 1))?;
        // `sha256sum` marks binary mode with `*` before the name.
        let name = name.trim_start().trim_start_matches('*');
        let want = parse_hex(hex).ok_or(Invalid::BadLine(i + 1))?;
        let got = hashes
            .get(name)
            .ok_or_else(|| Invalid::Missing(name.to_owned()))?;
        if *got != want {
            return Err(Invalid::Mismatch(name.to_owned()));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(Invalid::EmptySums);
    }
    Ok(Verified { checked })
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex of a sha256 digest (the audit line's and `sha256sum`'s form).
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot-shaped archive: members, and a SHA256SUMS for those `listed`.
    pub(crate) fn archive(members: &[(&str, &[u8])], sums: Option<String>) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        for (n, d) in members {
            add(n, d);
        }
        if let Some(s) = sums {
            add(SUMS, s.as_bytes());
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    pub(crate) fn sums_of(members: &[(&str, &[u8])]) -> String {
        members
            .iter()
            .map(|(n, d)| format!("{}  {n}\n", sha256_hex(d)))
            .collect()
    }

    pub(crate) fn good() -> Vec<u8> {
        let m: &[(&str, &[u8])] = &[("meta.json", b"{}"), ("state.bin", b"raft state")];
        archive(m, Some(sums_of(m)))
    }

    #[test]
    fn a_snapshot_with_matching_sums_verifies() {
        assert_eq!(verify(&good()), Ok(Verified { checked: 2 }));
    }

    #[test]
    fn every_kind_of_damage_is_found() {
        let m: &[(&str, &[u8])] = &[("meta.json", b"{}"), ("state.bin", b"raft state")];
        let tampered: &[(&str, &[u8])] = &[("meta.json", b"{}"), ("state.bin", b"other")];
        assert_eq!(
            verify(&archive(tampered, Some(sums_of(m)))),
            Err(Invalid::Mismatch("state.bin".into()))
        );
        assert_eq!(verify(&archive(m, None)), Err(Invalid::NoSums));
        assert_eq!(
            verify(&archive(m, Some(String::new()))),
            Err(Invalid::EmptySums)
        );
        assert_eq!(
            verify(&archive(&m[..1], Some(sums_of(m)))),
            Err(Invalid::Missing("state.bin".into()))
        );
        assert_eq!(
            verify(&archive(m, Some("zz  meta.json\n".into()))),
            Err(Invalid::BadLine(1))
        );
        assert!(matches!(verify(b"not gzip"), Err(Invalid::Archive(_))));
        let mut cut = good();
        cut.truncate(cut.len() / 2);
        assert!(verify(&cut).is_err(), "a truncated archive fails");
    }
}

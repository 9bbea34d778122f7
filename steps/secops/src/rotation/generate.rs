//! Value generators for rotation. Generated values go straight into `SecretString`.

use std::fmt;

use base64::Engine as _;
use rand::seq::{IndexedRandom, SliceRandom};
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::vault::Vault;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGIT: &[u8] = b"0123456789";
/// Symbols that survive shells, URLs-in-config and YAML without quoting surprises.
const SYMBOL: &[u8] = b"-_.~!@#%^*+=";

/// How one key's new value is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// Random password from character classes, at least one of each class.
    Password { length: usize, classes: Vec<Class> },
    /// `bytes` random bytes, hex-encoded.
    Hex { bytes: usize },
    /// `bytes` random bytes, standard base64.
    Base64 { bytes: usize },
    /// A random (v4) UUID.
    Uuid,
    /// Vault generates it from a password policy (`sys/policies/password/NAME/generate`).
    Policy { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Lower,
    Upper,
    Digit,
    Symbol,
}

impl Class {
    fn chars(self) -> &'static [u8] {
        match self {
            Class::Lower => LOWER,
            Class::Upper => UPPER,
            Class::Digit => DIGIT,
            Class::Symbol => SYMBOL,
        }
    }
}

impl Generator {
    /// The kind recorded in audit events and metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            Generator::Password { .. } => "password",
            Generator::Hex { .. } => "hex",
            Generator::Base64 { .. } => "base64",
            Generator::Uuid => "uuid",
            Generator::Policy { .. } => "policy",
        }
    }

    /// Parses `password[:length=N][:classes=lower,upper,digit,symbol]`, `hex[:bytes=N]`,
    /// `base64[:bytes=N]`, `uuid`, `policy:NAME`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let opts: Vec<&str> = parts.collect();
        let opt = |name: &str| -> std::result::Result<Option<&str>, String> {
            let mut found = None;
            for o in &opts {
                match o.split_once('=') {
                    Some((k, v)) if k == name => found = Some(v),
                    Some((k, _)) if ["length", "classes", "bytes"].contains(&k) => {}
                    _ => return Err(format!("unknown generator option {o:?} in {s:?}")),
                }
            }
            Ok(found)
        };
        let number = |name: &str,
                      default: usize,
                      min: usize,
                      max: usize|
         -> std::result::Result<usize, String> {
            match opt(name)? {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "{name} must be a number from {min} to {max}, not {v:?}"
                    )),
                },
            }
        };
        match kind {
            "password" => {
                let length = number("length", 32, 8, 1024)?;
                let classes = match opt("classes")? {
                    None => vec![Class::Lower, Class::Upper, Class::Digit, Class::Symbol],
                    Some(list) => {
                        let mut v = Vec::new();
                        for c in list.split(',') {
                            let class = match c {
                                "lower" => Class::Lower,
                                "upper" => Class::Upper,
                                "digit" | "digits" => Class::Digit,
                                "symbol" | "symbols" => Class::Symbol,
                                other => {
                                    return Err(format!(
                                        "unknown character class {other:?} (lower, upper, digit, symbol)"
                                    ))
                                }
                            };
                            if !v.contains(&class) {
                                v.push(class);
                            }
                        }
                        v
                    }
                };
                if classes.len() > length {
                    return Err("length must be at least the number of classes".into());
                }
                Ok(Generator::Password { length, classes })
            }
            "hex" => Ok(Generator::Hex {
                bytes: number("bytes", 32, 8, 4096)?,
            }),
            "base64" => Ok(Generator::Base64 {
                bytes: number("bytes", 32, 8, 4096)?,
            }),
            "uuid" if opts.is_empty() => Ok(Generator::Uuid),
            "policy" => match opts.as_slice() {
                [name] if is_policy_name(name) => Ok(Generator::Policy {
                    name: name.to_string(),
                }),
                _ => Err(format!(
                    "policy needs one policy name: policy:NAME, not {s:?}"
                )),
            },
            _ => Err(format!(
                "unknown generator {s:?}: use password, hex, base64, uuid or policy:NAME"
            )),
        }
    }

    /// Makes a new value. Only `Policy` talks to Vault.
    pub async fn generate(&self, vault: &Vault) -> Result<SecretString> {
        let mut rng = rand::rng();
        let v = match self {
            Generator::Password { length, classes } => {
                let mut out: Vec<u8> = classes
                    .iter()
                    .map(|c| *c.chars().choose(&mut rng).unwrap_or(&b'x'))
                    .collect();
                let all: Vec<u8> = classes
                    .iter()
                    .flat_map(|c| c.chars().iter().copied())
                    .collect();
                while out.len() < *length {
                    out.push(*all.choose(&mut rng).unwrap_or(&b'x'));
                }
                out.shuffle(&mut rng);
                String::from_utf8(out)
                    .map_err(|_| Error::Internal("password is not ASCII".into()))?
            }
            Generator::Hex { bytes } => {
                // Sized up front: a growing string would leave unwiped copies behind.
                let mut s = String::with_capacity(2 * bytes);
                for b in random_bytes(*bytes).iter() {
                    s.push(char::from(HEX[usize::from(b >> 4)]));
                    s.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                s
            }
            Generator::Base64 { bytes } => {
                base64::engine::general_purpose::STANDARD.encode(random_bytes(*bytes))
            }
            Generator::Uuid => uuid::Uuid::new_v4().to_string(),
            Generator::Policy { name } => return vault.generate_password(name).await,
        };
        Ok(crate::secret::secret_string(v))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generator::Password { length, .. } => write!(f, "password(length={length})"),
            Generator::Hex { bytes } => write!(f, "hex(bytes={bytes})"),
            Generator::Base64 { bytes } => write!(f, "base64(bytes={bytes})"),
            Generator::Uuid => write!(f, "uuid"),
            Generator::Policy { name } => write!(f, "policy({name})"),
        }
    }
}

fn random_bytes(n: usize) -> zeroize::Zeroizing<Vec<u8>> {
    let mut v = zeroize::Zeroizing::new(vec![0u8; n]);
    rand::fill(&mut v[..]);
    v
}

fn is_policy_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `KEY=GENERATOR` as given to `--key`.
pub fn parse_key_spec(s: &str) -> std::result::Result<(String, Generator), String> {
    let (key, gen) = s.split_once('=').ok_or_else(|| {
        format!("--key {s:?} must be KEY=GENERATOR, e.g. password=password:length=32")
    })?;
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!("--key: {key:?} is not a valid secret key name"));
    }
    Ok((key.to_owned(), Generator::parse(gen)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn offline() -> Vault {
        Vault::offline_for_tests()
    }

    #[test]
    fn parses_every_generator() {
        assert_eq!(
            Generator::parse("password:length=12:classes=lower,digit").unwrap(),
            Generator::Password {
                length: 12,
                classes: vec![Class::Lower, Class::Digit]
            }
        );
        assert_eq!(
            Generator::parse("hex:bytes=16").unwrap(),
            Generator::Hex { bytes: 16 }
        );
        assert_eq!(
            Generator::parse("base64").unwrap(),
            Generator::Base64 { bytes: 32 }
        );
        assert_eq!(Generator::parse("uuid").unwrap(), Generator::Uuid);
        assert_eq!(
            Generator::parse("policy:strong-1").unwrap(),
            Generator::Policy {
                name: "strong-1".into()
            }
        );
        for bad in [
            "",
            "pass",
            "password:length=4",
            "password:len=12",
            "hex:bytes=x",
            "policy:",
            "policy:a/b",
            "uuid:x",
            "password:classes=emoji",
        ] {
            assert!(Generator::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_key_spec("db.password=uuid").unwrap().0, "db.password");
        assert!(parse_key_spec("no-generator").is_err());
        assert!(parse_key_spec("a/b=uuid").is_err());
    }

    #[tokio::test]
    async fn passwords_honour_length_and_every_class() {
        let g = Generator::parse("password:length=16").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let p = g.generate(&offline()).await.unwrap();
            let p = p.expose_secret();
            assert_eq!(p.len(), 16);
            for class in [LOWER, UPPER, DIGIT, SYMBOL] {
                assert!(p.bytes().any(|b| class.contains(&b)), "{class:?} missing");
            }
            seen.insert(p.to_owned());
        }
        assert_eq!(seen.len(), 50, "values repeat");
    }

    #[tokio::test]
    async fn byte_generators_have_the_right_size() {
        let hex = Generator::Hex { bytes: 20 }
            .generate(&offline())
            .await
            .unwrap();
        assert_eq!(hex.expose_secret().len(), 40);
        assert!(hex.expose_secret().bytes().all(|b| b.is_ascii_hexdigit()));
        let b64 = Generator::Base64 { bytes: 30 }
            .generate(&offline())
            .await
            .unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64.expose_secret())
                .unwrap()
                .len(),
            30
        );
        let u = Generator::Uuid.generate(&offline()).await.unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(u.expose_secret())
                .unwrap()
                .get_version_num(),
            4
        );
    }
}

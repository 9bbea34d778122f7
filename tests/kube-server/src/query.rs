//! Query strings. Clients form-encode them (space as `+`), which the apiserver decodes
//! but kube-fake-client does not, so `labelSelector=app+in+(a,b)` would match nothing.
//! Forwarded queries are re-encoded with `%20` instead.

/// Decoded `(key, value)` pairs, form-urlencoded semantics.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`, decoded.
pub fn param(query: Option<&str>, key: &str) -> Option<String> {
    pairs(query?)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// The same parameters minus `drop`, percent-encoded so that a plain percent-decoder
/// reads them right.
pub fn canonical(query: &str, drop: &[&str]) -> String {
    pairs(query)
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_round_trips_to_percent_encoding() {
        let q = "&labelSelector=app+in+%28a%2Cb%29%2Ctier%21%3Dweb&limit=5";
        assert_eq!(
            param(Some(q), "labelSelector").as_deref(),
            Some("app in (a,b),tier!=web")
        );
        assert_eq!(
            canonical(q, &[]),
            "labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dweb&limit=5"
        );
        assert_eq!(canonical(q, &["labelSelector"]), "limit=5");
        assert_eq!(param(Some("watch"), "watch").as_deref(), Some(""));
        assert_eq!(param(None, "watch"), None);
    }
}

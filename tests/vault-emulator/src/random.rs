//! `sys/tools/random(/:source)(/:bytes)`, as Vault 1.17's helper/random
//! `HandleRandomAPI` serves it: the pattern
//! `tools/random(/(?P<source>\w(([\w-.]+)?\w)?))?(/(?P<urlbytes>.+))?`, a URL
//! segment that is no valid source read as the byte count, at most 128 KiB, and
//! `hex` or `base64` output. Open source Vault has no entropy augmentation, so
//! `seal` warns and every source reads the platform RNG.

use crate::fields::{self, field_error, Data};
use crate::gofmt;
use crate::reply::{ApiError, Handled, Outcome, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// `APIMaxBytes` before Vault 1.18 added DRBG mode (and raised it to 10 MiB).
pub const MAX_BYTES: i64 = 128 * 1024;
const DEFAULT_BYTES: i64 = 32;
const SEAL_WARNING: &str = "no seal/entropy augmentation available, using platform entropy source";

/// The `source` and `urlbytes` captures (empty when absent) of the path after
/// `tools/random`, or `None` when the route does not match.
pub fn route(after: &str) -> Option<(&str, &str)> {
    if after.is_empty() {
        return Some(("", ""));
    }
    let rest = after.strip_prefix('/')?;
    // Go's `\w` is ASCII; the source must start and end with one.
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let run = rest
        .find(|c: char| !(word(c) || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    let source = &rest[..run];
    let tail = &rest[run..];
    let valid_source = source.starts_with(word) && source.ends_with(word);
    if valid_source && (tail.is_empty() || tail.len() > 1 && tail.starts_with('/')) {
        return Some((source, tail.get(1..).unwrap_or_default()));
    }
    // No source: everything after the slash is `urlbytes`.
    (!rest.is_empty()).then_some(("", rest))
}

/// Go's `strconv.Atoi` (64-bit `int`), with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            gofmt::quote(s)
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            gofmt::quote(s)
        )
    })
}

fn is_valid_source(s: &str) -> bool {
    matches!(s, "" | "platform" | "seal" | "all")
}

/// `HandleRandomAPI`. Field types are validated first, as the framework does.
pub fn handle(source: &str, urlbytes: &str, data: &Data) -> Handled {
    let body_bytes = match data.get("bytes") {
        None => DEFAULT_BYTES,
        Some(raw) => {
            fields::int(raw).map_err(|e| ApiError::bad_request(field_error("bytes", raw, &e)))?
        }
    };
    let format = match data.get("format") {
        None => "base64".to_string(),
        Some(_) => fields::string(data, "format").map_err(ApiError::bad_request)?,
    };
    let url_count = |s: &str| {
        atoi(s).map_err(|e| ApiError::bad_request(format!("error parsing url-set byte count: {e}")))
    };
    let (source, bytes) = if source.is_empty() {
        ("platform", body_bytes)
    } else if urlbytes.is_empty() && is_valid_source(source) {
        (source, body_bytes)
    } else if urlbytes.is_empty() {
        ("platform", url_count(source)?)
    } else {
        (source, url_count(urlbytes)?)
    };
    if bytes < 1 {
        return Err(ApiError::bad_request(r#""bytes" cannot be less than 1"#));
    }
    if bytes > MAX_BYTES {
        return Err(ApiError::bad_request(format!(
            r#""bytes" should be less than {MAX_BYTES}"#
        )));
    }
    if format != "hex" && format != "base64" {
        return Err(ApiError::bad_request(format!(
            r#"unsupported encoding format {}; must be "hex" or "base64""#,
            gofmt::quote(&format)
        )));
    }
    let warnings = match source {
        "" | "platform" | "all" => Vec::new(),
        "seal" => vec![SEAL_WARNING.to_string()],
        other => {
            return Err(ApiError::bad_request(format!(
                r#"unsupported entropy source {}; must be "platform" or "seal", or "all""#,
                gofmt::quote(other)
            )))
        }
    };
    let mut buf = vec![0u8; usize::try_from(bytes).unwrap_or_default()];
    rand::fill(&mut buf[..]);
    let encoded = if format == "hex" {
        buf.iter().map(|b| format!("{b:02x}")).collect()
    } else {
        STANDARD.encode(&buf)
    };
    Ok(Outcome::Resp(Response {
        data: Some(json!({ "random_bytes": encoded })),
        warnings,
        auth: None::<Value>,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_path_pattern() {
        assert_eq!(route(""), Some(("", "")));
        assert_eq!(route("/64"), Some(("64", "")));
        assert_eq!(route("/seal"), Some(("seal", "")));
        assert_eq!(route("/platform/16"), Some(("platform", "16")));
        assert_eq!(route("/a/b/c"), Some(("a", "b/c")));
        // A segment that cannot be a source (`\w` at both ends) is all `urlbytes`.
        assert_eq!(route("/-5"), Some(("", "-5")));
        assert_eq!(route("/x-/1"), Some(("", "x-/1")));
        assert_eq!(route("/"), None);
        assert_eq!(route("x"), None);
    }

    #[test]
    fn atoi_matches_go() {
        assert_eq!(atoi("+12"), Ok(12));
        assert_eq!(atoi("-3"), Ok(-3));
        assert_eq!(
            atoi("1_0"),
            Err("strconv.Atoi: parsing \"1_0\": invalid syntax".to_string())
        );
        assert_eq!(
            atoi("99999999999999999999"),
            Err("strconv.Atoi: parsing \"99999999999999999999\": value out of range".to_string())
        );
    }
}

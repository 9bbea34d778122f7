//! Go-compatible renderings. Vault is written in Go: its error texts come from `fmt`
//! (`%q`, `%v`), `go-multierror` and `time`, and clients compare them verbatim, so the
//! emulator reproduces those exact formats instead of Rust's.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;
use std::fmt::Write as _;

/// `strconv.Quote`, which is what Go's `%q` prints for a string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space. Rust's std has no category tables, so this rejects the categories
/// that are not printable (controls, separators other than U+0020, format
/// characters, private use, surrogates and noncharacters) and accepts the rest;
/// unassigned code points, which Go also rejects, are accepted.
pub fn is_print(c: char) -> bool {
    let u = u32::from(c);
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let private_use = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let noncharacter = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
    !(format || private_use || noncharacter)
}

/// `go-multierror`'s default `ListFormatFunc`, which Vault's request handling wraps
/// most backend and ACL errors in.
pub fn multierror(errors: &[String]) -> String {
    match errors {
        [one] => format!("1 error occurred:\n\t* {one}\n\n"),
        many => {
            let points: Vec<String> = many.iter().map(|e| format!("* {e}")).collect();
            format!(
                "{} errors occurred:\n\t{}\n\n",
                many.len(),
                points.join("\n\t")
            )
        }
    }
}

/// `time.Duration.String()` for a whole number of seconds: `0s`, `45s`, `5m0s`, `1h0m0s`.
pub fn duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// `time.RFC3339Nano` in UTC, as `ptypes.TimestampString` renders KV timestamps:
/// fractional seconds without trailing zeros, none at all when zero.
pub fn rfc3339_nano(t: Timestamp) -> String {
    let dt = t.to_zoned(TimeZone::UTC).datetime();
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let nanos = dt.subsec_nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Go's `%v` for a decoded JSON value (`[a b]`, `map[k:v]`, `<nil>`), as it appears in
/// `mapstructure` error messages.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's type name for a decoded JSON value, as `mapstructure` reports it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_strconv_quote() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("tab\there\n"), r#""tab\there\n""#);
        assert_eq!(quote("nul\u{0}del\u{7f}"), r#""nul\x00del\x7f""#);
        assert_eq!(quote("zw\u{200b}"), r#""zw\u200b""#);
        assert_eq!(quote("😀 é"), "\"😀 é\"");
        assert_eq!(quote("\u{F0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn multierror_formats_like_go_multierror() {
        assert_eq!(multierror(&["x".into()]), "1 error occurred:\n\t* x\n\n");
        assert_eq!(
            multierror(&["a".into(), "b".into()]),
            "2 errors occurred:\n\t* a\n\t* b\n\n"
        );
    }

    #[test]
    fn durations_render_like_go() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(300), "5m0s");
        assert_eq!(duration(3600), "1h0m0s");
        assert_eq!(duration(3723), "1h2m3s");
        assert_eq!(duration(-1), "-1s");
    }

    #[test]
    fn timestamps_trim_trailing_zeros() {
        let t: Timestamp = "2024-05-06T07:08:09.120Z".parse().expect("valid timestamp");
        assert_eq!(rfc3339_nano(t), "2024-05-06T07:08:09.12Z");
        let t: Timestamp = "2024-05-06T07:08:09Z".parse().expect("valid timestamp");
        assert_eq!(rfc3339_nano(t), "2024-05-06T07:08:09Z");
    }
}

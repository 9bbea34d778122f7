//! Request field decoding with the leniency of Vault's `framework.FieldData` and
//! `mapstructure.WeakDecode`: clients send numbers as strings, lists as
//! comma-separated strings and durations as `"1h"`, and Vault accepts all of them.
//! A JSON `null` decodes to the type's zero value, as `WeakDecode(nil)` leaves it.

use crate::gofmt;
use serde_json::{Map, Value};

/// A request's fields: the JSON body of a write, or the query of a read.
pub type Data = Map<String, Value>;

/// `framework.FieldData.Validate`'s error for a field that does not decode.
pub fn field_error(field: &str, raw: &Value, detail: &str) -> String {
    format!(
        "error converting input {} for field {}: {detail}",
        gofmt::value(raw),
        gofmt::quote(field)
    )
}

/// `TypeInt`: integers, integer strings in any Go base-0 form, and booleans.
pub fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("cannot parse '{n}' as int")),
        Value::String(s) => parse_go_int(s).ok_or_else(|| format!("cannot parse '{s}' as int")),
        other => Err(format!(
            "'' expected type 'int', got unconvertible type '{}'",
            gofmt::type_name(other)
        )),
    }
}

/// `strconv.ParseInt(s, 0, 64)` as `mapstructure` calls it: sign, `0x`/`0o`/`0b`
/// prefixes, a leading `0` for octal, `_` separators; the empty string is zero.
fn parse_go_int(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    let body = body.replace('_', "");
    if body.is_empty() || body.starts_with('+') || body.starts_with('-') {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// `TypeBool`: booleans, Go `strconv.ParseBool` strings (the empty string is false)
/// and numbers (non-zero is true).
pub fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) if s.is_empty() => Ok(false),
        Value::String(s) => parse_go_bool(s).ok_or_else(|| format!("cannot parse '{s}' as bool")),
        other => Err(format!(
            "'' expected type 'bool', got unconvertible type '{}'",
            gofmt::type_name(other)
        )),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `TypeDurationSecond` / `TypeSignedDurationSecond` (`parseutil.ParseDurationSecond`):
/// a number of seconds, a numeric string, or a Go duration string (`90s`, `1h30m`,
/// also `d` for days). Sub-second parts are truncated.
pub fn duration_secs(v: &Value) -> Result<i64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("cannot parse '{n}' as a duration")),
        Value::String(s) => {
            parse_duration(s).ok_or_else(|| format!("time: invalid duration {}", gofmt::quote(s)))
        }
        other => Err(format!(
            "cannot parse '{}' as a duration",
            gofmt::value(other)
        )),
    }
}

/// A duration string as `parseutil.ParseDurationSecond` accepts it, in seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs);
    }
    if let Some(days) = s.strip_suffix('d') {
        return days.parse::<i64>().ok()?.checked_mul(86_400);
    }
    parse_go_duration(s).map(|nanos| (nanos / 1_000_000_000) as i64)
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    let nanos = total as i128;
    Some(if negative { -nanos } else { nanos })
}

/// `TypeCommaStringSlice`: a JSON array (elements weak-decoded to strings) or a
/// comma-separated string, each element trimmed.
pub fn string_slice(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(s.split(',').map(|p| p.trim().to_string()).collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| weak_string(item).map(|s| s.trim().to_string()))
            .collect(),
        other => weak_string(other).map(|s| vec![s]),
    }
}

/// `TypeCommaIntSlice`: a JSON array, a comma-separated string or a single number.
pub fn int_slice(v: &Value) -> Result<Vec<i64>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) => s
            .split(',')
            .map(|p| int(&Value::String(p.trim().to_string())))
            .collect(),
        Value::Array(items) => items.iter().map(int).collect(),
        other => int(other).map(|n| vec![n]),
    }
}

/// `mapstructure.WeakDecode` into a string: booleans become `1`/`0`, numbers their
/// literal text and `null` the empty string; arrays and objects do not convert.
pub fn weak_string(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "1 error(s) decoding:\n\n* '' expected type 'string', got unconvertible type '{}', value: '{}'",
            gofmt::type_name(other),
            gofmt::value(other)
        )),
    }
}

/// A `TypeString` field: absent or `null` is empty, other scalars weak-decode.
pub fn string(data: &Data, key: &str) -> Result<String, String> {
    match data.get(key) {
        None => Ok(String::new()),
        Some(v) => weak_string(v).map_err(|e| field_error(key, v, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints_decode_weakly() {
        assert_eq!(int(&json!(3)), Ok(3));
        assert_eq!(int(&json!("3")), Ok(3));
        assert_eq!(int(&json!("0x10")), Ok(16));
        assert_eq!(int(&json!("010")), Ok(8));
        assert_eq!(int(&json!("")), Ok(0));
        assert_eq!(int(&json!(null)), Ok(0));
        assert_eq!(int(&json!(true)), Ok(1));
        assert!(int(&json!("1.5")).is_err());
        assert!(int(&json!(1.5)).is_err());
        assert!(int(&json!("abc")).is_err());
        assert!(int(&json!([1])).is_err());
    }

    #[test]
    fn durations_accept_go_and_integer_forms() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1.5h"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("-1s"), Some(-1));
        assert_eq!(parse_duration("500ms"), Some(0));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn slices_accept_commas_and_arrays() {
        assert_eq!(
            string_slice(&json!("a, b")),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            string_slice(&json!(["a", 1])),
            Ok(vec!["a".to_string(), "1".to_string()])
        );
        assert_eq!(int_slice(&json!("1,2")), Ok(vec![1, 2]));
        assert_eq!(int_slice(&json!([1, "2"])), Ok(vec![1, 2]));
        assert_eq!(int_slice(&json!(3)), Ok(vec![3]));
        assert_eq!(int_slice(&json!([])), Ok(vec![]));
    }

    #[test]
    fn weak_strings_follow_mapstructure() {
        assert_eq!(weak_string(&json!(true)), Ok("1".to_string()));
        assert_eq!(weak_string(&json!(12)), Ok("12".to_string()));
        assert_eq!(weak_string(&json!(null)), Ok(String::new()));
        assert!(weak_string(&json!(["a"])).is_err());
    }
}

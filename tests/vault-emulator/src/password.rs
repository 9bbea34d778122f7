//! Password policies as Vault's helper/random package implements them
//! (`ParsePolicy`, `StringGenerator.validateConfig`, `Generate`, `CharsetRule`): a
//! length and `charset` rules, passwords drawn uniformly from the de-duplicated
//! union of the rules' charsets and kept only when every rule's `min-chars` is met.
//! Field decoding errors reproduce `mapstructure`'s texts, as `ParsePolicy` wraps
//! them. The RNG is `rand`'s thread RNG, a ChaCha CSPRNG seeded from the OS.

use crate::gofmt;
use crate::hcl::{self, Item, Value};
use rand::RngExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `minPasswordLength` / `maxPasswordLength` in vault/logical_system.go.
pub const MIN_LENGTH: i64 = 4;
pub const MAX_LENGTH: i64 = 100;
/// `maxCharsetLen` in string_generator.go; Vault's message says 255.
const MAX_CHARSET_LEN: usize = 256;
/// How long `Generate` keeps trying when its context has no deadline, and the
/// budget `handlePoliciesPasswordSet` gives its ten trial generations.
pub const GENERATE_TIMEOUT: Duration = Duration::from_secs(1);

/// A `charset` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: i64,
}

impl CharsetRule {
    /// `CharsetRule.Pass`.
    fn passes(&self, candidate: &[char]) -> bool {
        if self.min_chars <= 0 {
            return true;
        }
        let count = candidate
            .iter()
            .filter(|c| self.charset.contains(c))
            .count();
        i64::try_from(count).unwrap_or(i64::MAX) >= self.min_chars
    }
}

/// A parsed, validated policy: `StringGenerator`.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    pub length: i64,
    pub rules: Vec<CharsetRule>,
    /// The sorted, de-duplicated union of the rules' charsets.
    charset: Vec<char>,
}

/// Why a generation failed, with `Generate`'s error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerateError {
    CharsetTooLong,
    TimedOut,
}

impl GenerateError {
    pub fn message(self) -> String {
        match self {
            GenerateError::CharsetTooLong => format!(
                "unable to generate random characters: charset is too long: limited to {} characters",
                MAX_CHARSET_LEN - 1
            ),
            GenerateError::TimedOut => "timed out generating string".to_string(),
        }
    }
}

impl Generator {
    /// `Generate`: random candidates from the union charset until one passes every
    /// rule, or the deadline passes.
    pub fn generate(&self, deadline: Instant) -> Result<String, GenerateError> {
        let length = usize::try_from(self.length).unwrap_or(0);
        let mut rng = rand::rng();
        loop {
            if Instant::now() >= deadline {
                return Err(GenerateError::TimedOut);
            }
            if self.charset.len() > MAX_CHARSET_LEN {
                return Err(GenerateError::CharsetTooLong);
            }
            let candidate: Vec<char> = (0..length)
                .map(|_| self.charset[rng.random_range(0..self.charset.len())])
                .collect();
            if self.rules.iter().all(|r| r.passes(&candidate)) {
                return Ok(candidate.into_iter().collect());
            }
        }
    }
}

/// `random.ParsePolicy`: decode, then `validateConfig`. The error is the text Vault
/// puts after `invalid password policy: `.
pub fn parse(text: &str) -> Result<Generator, String> {
    let items = hcl::parse(text).map_err(|e| format!("unable to decode: {e}"))?;
    let length = match items
        .iter()
        .rev()
        .find(|i| i.keys.len() == 1 && i.keys[0] == "length")
    {
        None => 0,
        Some(item) => decode_int("length", &item.value).map_err(|e| {
            format!(
                "failed to decode configuration: {}",
                decoding_errors(vec![e])
            )
        })?,
    };
    let rules = rules(&items)?;
    validate(length, rules)
}

/// `validateConfig`: every problem at once, as a multierror.
fn validate(length: i64, rules: Vec<CharsetRule>) -> Result<Generator, String> {
    let mut errors = Vec::new();
    let min_len: i64 = rules.iter().map(|r| r.min_chars).sum();
    if length <= 0 {
        errors.push("length must be > 0".to_string());
    } else if length < min_len {
        errors.push(format!(
            "specified rules require at least {min_len} characters but {length} is specified"
        ));
    }
    let charset: Vec<char> = rules
        .iter()
        .flat_map(|r| r.charset.iter().copied())
        .collect::<BTreeSet<char>>()
        .into_iter()
        .collect();
    if charset.is_empty() {
        errors.push("no charset specified".to_string());
    } else if !charset.iter().all(|c| gofmt::is_print(*c)) {
        errors.push("non-printable character in charset".to_string());
    }
    if errors.is_empty() {
        Ok(Generator {
            length,
            rules,
            charset,
        })
    } else {
        Err(gofmt::multierror(&errors))
    }
}

/// `mapstructure.Error`: sorted bullet points.
fn decoding_errors(errors: Vec<String>) -> String {
    let mut points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    points.sort();
    format!(
        "{} error(s) decoding:\n\n{}",
        errors.len(),
        points.join("\n")
    )
}

/// `reflect.Kind` of a decoded value, as `decodeSlice` names it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Str(_) => "string",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::List(_) | Value::Object(_) => "slice",
    }
}

/// `mapstructure`'s `decodeInt` without weak typing: floats truncate.
fn decode_int(name: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::Float(f) => Ok(*f as i64),
        other => Err(format!(
            "'{name}' expected type 'int', got unconvertible type '{}', value: '{}'",
            other.go_type(),
            other.go_value()
        )),
    }
}

/// `getMapSlice` + `getRuleInfo` + `Registry.parseRule` over every `rule` item.
fn rules(items: &[Item]) -> Result<Vec<CharsetRule>, String> {
    let mut out = Vec::new();
    for item in items.iter().filter(|i| i.keys[0] == "rule") {
        let (rule_type, body) = match (&item.keys[1..], &item.value) {
            ([rule_type, rest @ ..], value) => (rule_type.clone(), nest(rest, value)),
            ([], Value::Object(inner)) => {
                let Some(first) = inner.first() else {
                    return Err(
                        "unable to parse rules: unable to get rule info: rule is empty".to_string(),
                    );
                };
                (first.keys[0].clone(), nest(&first.keys[1..], &first.value))
            }
            ([], Value::List(elements)) => {
                let bad = elements
                    .iter()
                    .position(|e| !matches!(e, Value::Object(_)))
                    .unwrap_or(0);
                let got = elements.get(bad).map_or("slice", kind);
                return Err(format!(
                    "unable to retrieve rules: {}",
                    decoding_errors(vec![format!("'[{bad}]' expected a map, got '{got}'")])
                ));
            }
            ([], other) => {
                return Err(format!(
                    "unable to retrieve rules: {}",
                    decoding_errors(vec![format!(
                        "'': source data must be an array or slice, got {}",
                        kind(other)
                    )])
                ));
            }
        };
        let Value::Object(fields) = body else {
            return Err(format!(
                "unable to parse rules: unable to get rule info: unable to get rule data: {}",
                decoding_errors(vec![format!(
                    "'': source data must be an array or slice, got {}",
                    kind(&body)
                )])
            ));
        };
        if rule_type != "charset" {
            return Err(format!(
                "unable to parse rules: unable to parse rule {rule_type}: unrecognized rule type {rule_type}"
            ));
        }
        out.push(charset_rule(&fields).map_err(|e| {
            format!("unable to parse rules: unable to parse rule charset: failed to parse charset restriction: {e}")
        })?);
    }
    Ok(out)
}

/// A block's remaining labels become nested objects, as HCL decodes them.
fn nest(keys: &[String], value: &Value) -> Value {
    match keys {
        [] => value.clone(),
        [first, rest @ ..] => Value::Object(vec![Item {
            keys: vec![first.clone()],
            value: nest(rest, value),
        }]),
    }
}

/// `ParseCharset`: `charset` (a string, or a list of code points) and `min-chars`;
/// other keys are ignored.
fn charset_rule(fields: &[Item]) -> Result<CharsetRule, String> {
    let last = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|f| f.keys.len() == 1 && f.keys[0] == name)
            .map(|f| &f.value)
    };
    let mut errors = Vec::new();
    let charset = match last("charset") {
        None => Vec::new(),
        Some(Value::Str(s)) => s.chars().collect(),
        Some(Value::List(elements)) => {
            let mut chars = Vec::new();
            for (i, element) in elements.iter().enumerate() {
                match element {
                    Value::Int(n) => chars.extend(u32::try_from(*n).ok().and_then(char::from_u32)),
                    other => errors.push(format!(
                        "'charset[{i}]' expected type 'int32', got unconvertible type '{}', value: '{}'",
                        other.go_type(),
                        other.go_value()
                    )),
                }
            }
            chars
        }
        Some(other) => {
            errors.push(format!(
                "'charset': source data must be an array or slice, got {}",
                kind(other)
            ));
            Vec::new()
        }
    };
    let min_chars = match last("min-chars").map(|v| decode_int("min-chars", v)) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            errors.push(e);
            0
        }
    };
    if errors.is_empty() {
        Ok(CharsetRule { charset, min_chars })
    } else {
        Err(decoding_errors(errors))
    }
}

/// A stored policy: the text as written (after base64 decoding) and its generator.
#[derive(Debug, Clone)]
pub struct Stored {
    pub text: String,
    pub generator: Generator,
}

/// `password_policy/<name>` in the system backend's storage.
#[derive(Debug, Default)]
pub struct PasswordPolicies {
    policies: BTreeMap<String, Stored>,
}

impl PasswordPolicies {
    pub fn get(&self, name: &str) -> Option<&Stored> {
        self.policies.get(name)
    }

    pub fn set(&mut self, name: &str, stored: Stored) {
        self.policies.insert(name.to_string(), stored);
    }

    pub fn remove(&mut self, name: &str) {
        self.policies.remove(name);
    }

    /// Every name, slashes included (vault#23155), sorted as storage lists them.
    pub fn names(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> Instant {
        Instant::now() + GENERATE_TIMEOUT
    }

    #[test]
    fn hcl_and_json_give_the_same_generator() {
        let hcl = "length = 12\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 2\n}\nrule \"charset\" {\n  charset = \"cd\"\n}\n";
        let json = r#"{"length":12,"rule":[{"charset":{"charset":"abc","min-chars":2}},{"charset":[{"charset":"cd"}]}]}"#;
        let a = parse(hcl).expect("hcl");
        let b = parse(json).expect("json");
        assert_eq!(a, b);
        assert_eq!(a.charset, vec!['a', 'b', 'c', 'd']);
        assert_eq!(a.rules[0].min_chars, 2);
    }

    #[test]
    fn generated_passwords_meet_every_rule() {
        let g = parse("length = 8\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 3\n}\nrule \"charset\" {\n charset = \"XY\"\n min-chars = 4\n}\n")
            .expect("parses");
        for _ in 0..50 {
            let p: Vec<char> = g.generate(later()).expect("generates").chars().collect();
            assert_eq!(p.len(), 8);
            assert!(p.iter().filter(|c| "ab".contains(**c)).count() >= 3);
            assert!(p.iter().filter(|c| "XY".contains(**c)).count() >= 4);
        }
    }

    #[test]
    fn validate_config_reports_every_problem() {
        assert_eq!(
            parse("rule \"charset\" { charset = \"\" }").expect_err("invalid"),
            "2 errors occurred:\n\t* length must be > 0\n\t* no charset specified\n\n"
        );
        assert_eq!(
            parse("length = 3\nrule \"charset\" {\n charset = \"a\"\n min-chars = 4\n}").expect_err("invalid"),
            "1 error occurred:\n\t* specified rules require at least 4 characters but 3 is specified\n\n"
        );
        assert_eq!(
            parse("length = 8\nrule \"charset\" { charset = \"a\\tb\" }").expect_err("invalid"),
            "1 error occurred:\n\t* non-printable character in charset\n\n"
        );
    }

    #[test]
    fn decoding_errors_follow_mapstructure() {
        assert_eq!(
            parse("length = \"20\"").expect_err("string length"),
            "failed to decode configuration: 1 error(s) decoding:\n\n* 'length' expected type 'int', got unconvertible type 'string', value: '20'"
        );
        assert_eq!(
            parse("length = 8\nrule \"charset\" {\n charset = 5\n min-chars = \"1\"\n}").expect_err("bad fields"),
            "unable to parse rules: unable to parse rule charset: failed to parse charset restriction: 2 error(s) decoding:\n\n* 'charset': source data must be an array or slice, got int\n* 'min-chars' expected type 'int', got unconvertible type 'string', value: '1'"
        );
        assert_eq!(
            parse("length = 8\nrule \"upper\" { n = 1 }").expect_err("unknown rule"),
            "unable to parse rules: unable to parse rule upper: unrecognized rule type upper"
        );
        assert!(parse("length = = 8")
            .expect_err("syntax")
            .starts_with("unable to decode: At 1:10: "));
    }

    #[test]
    fn an_oversized_charset_cannot_generate() {
        let chars: String = (0x100u32..0x100 + 300).filter_map(char::from_u32).collect();
        let g = parse(&format!(
            "length = 8\nrule \"charset\" {{ charset = \"{chars}\" }}"
        ))
        .expect("parses: the size is only checked when generating");
        assert_eq!(g.generate(later()), Err(GenerateError::CharsetTooLong));
    }
}

//! The subset of HCL 1 (hashicorp/hcl v1, `hcl.Decode`) that password policies are
//! written in: `key = value` attributes, labelled blocks such as `rule "charset" { }`,
//! strings, numbers, booleans, lists, `#`, `//` and `/* */` comments, and, as
//! `hcl.Decode` does, a JSON document instead when the text starts with `{`. Heredocs
//! and `${}` interpolation are not supported. Syntax errors carry HCL's `At L:C:`
//! prefix; the wording after it is the emulator's own.

use serde_json::Value as Json;

/// A decoded value, before any schema is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Value>),
    Object(Vec<Item>),
}

/// One attribute or block: `a = 1` has keys `["a"]`, `rule "charset" { }` has keys
/// `["rule", "charset"]` and an object value.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub keys: Vec<String>,
    pub value: Value,
}

impl Value {
    /// The Go type `hcl.Decode` into `interface{}` produces, as `mapstructure` names it.
    pub fn go_type(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::List(_) => "[]interface {}",
            Value::Object(_) => "[]map[string]interface {}",
        }
    }

    /// Go's `%v` of the decoded value, for `mapstructure` messages.
    pub fn go_value(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => {
                let parts: Vec<String> = items.iter().map(Value::go_value).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Object(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| format!("{}:{}", i.keys.join(" "), i.value.go_value()))
                    .collect();
                format!("[map[{}]]", parts.join(" "))
            }
        }
    }
}

/// Parses HCL, or JSON when the first non-blank character is `{`.
pub fn parse(text: &str) -> Result<Vec<Item>, String> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let items = parser.object_items(false)?;
    Ok(items)
}

/// HCL's JSON flavour: objects become blocks, and a list of objects under a key
/// becomes one block per element.
fn parse_json(text: &str) -> Result<Vec<Item>, String> {
    let root: Json = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let detail = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        format!("At {}:{}: {detail}", e.line(), e.column())
    })?;
    match root {
        Json::Object(map) => json_items(&map),
        _ => Err("At 1:1: a JSON policy must be an object".to_string()),
    }
}

fn json_items(map: &serde_json::Map<String, Json>) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (key, value) in map {
        match value {
            Json::Array(elements)
                if !elements.is_empty() && elements.iter().all(Json::is_object) =>
            {
                for element in elements {
                    items.push(Item {
                        keys: vec![key.clone()],
                        value: json_value(element)?,
                    });
                }
            }
            other => items.push(Item {
                keys: vec![key.clone()],
                value: json_value(other)?,
            }),
        }
    }
    Ok(items)
}

fn json_value(value: &Json) -> Result<Value, String> {
    Ok(match value {
        Json::Null => return Err("At 1:1: null is not a valid HCL value".to_string()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(json_value).collect::<Result<_, _>>()?),
        Json::Object(map) => Value::Object(json_items(map)?),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Value),
    Bool(bool),
    Assign,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("IDENT {s}"),
            Tok::Str(s) => format!("STRING {s:?}"),
            Tok::Num(v) => format!("NUMBER {}", v.go_value()),
            Tok::Bool(b) => format!("BOOL {b}"),
            Tok::Assign => "ASSIGN".to_string(),
            Tok::LBrace => "LBRACE".to_string(),
            Tok::RBrace => "RBRACE".to_string(),
            Tok::LBrack => "LBRACK".to_string(),
            Tok::RBrack => "RBRACK".to_string(),
            Tok::Comma => "COMMA".to_string(),
            Tok::Eof => "EOF".to_string(),
        }
    }
}

/// A token and its 1-based line and column.
type Spanned = (Tok, usize, usize);

fn lex(text: &str) -> Result<Vec<Spanned>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let (start_line, start_col) = (line, col);
        let at = |msg: &str| format!("At {start_line}:{start_col}: {msg}");
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, c);
            continue;
        }
        if c == '#' || (c == '/' && chars.get(i + 1) == Some(&'/')) {
            while let Some(&ch) = chars.get(i).filter(|ch| **ch != '\n') {
                advance(&mut i, &mut line, &mut col, ch);
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            advance(&mut i, &mut line, &mut col, '/');
            advance(&mut i, &mut line, &mut col, '*');
            loop {
                if i + 1 >= chars.len() {
                    return Err(at("comment not terminated"));
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    advance(&mut i, &mut line, &mut col, '*');
                    advance(&mut i, &mut line, &mut col, '/');
                    break;
                }
                let ch = chars[i];
                advance(&mut i, &mut line, &mut col, ch);
            }
            continue;
        }
        let single = match c {
            '=' => Some(Tok::Assign),
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBrack),
            ']' => Some(Tok::RBrack),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            advance(&mut i, &mut line, &mut col, c);
            out.push((tok, start_line, start_col));
            continue;
        }
        if c == '"' {
            advance(&mut i, &mut line, &mut col, c);
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(at("literal not terminated"));
                };
                if ch == '\n' {
                    return Err(at("literal not terminated"));
                }
                advance(&mut i, &mut line, &mut col, ch);
                match ch {
                    '"' => break,
                    '\\' => {
                        let Some(&esc) = chars.get(i) else {
                            return Err(at("literal not terminated"));
                        };
                        advance(&mut i, &mut line, &mut col, esc);
                        let hex = |n: usize, i: &mut usize, line: &mut usize, col: &mut usize| {
                            let digits: String = chars.iter().skip(*i).take(n).collect();
                            let value = (digits.len() == n)
                                .then(|| u32::from_str_radix(&digits, 16).ok())
                                .flatten()
                                .and_then(char::from_u32);
                            for d in digits.chars() {
                                advance(i, line, col, d);
                            }
                            value
                        };
                        let decoded = match esc {
                            'n' => Some('\n'),
                            't' => Some('\t'),
                            'r' => Some('\r'),
                            'a' => Some('\u{7}'),
                            'b' => Some('\u{8}'),
                            'f' => Some('\u{c}'),
                            'v' => Some('\u{b}'),
                            '\\' => Some('\\'),
                            '"' => Some('"'),
                            'x' => hex(2, &mut i, &mut line, &mut col),
                            'u' => hex(4, &mut i, &mut line, &mut col),
                            'U' => hex(8, &mut i, &mut line, &mut col),
                            _ => None,
                        };
                        match decoded {
                            Some(d) => s.push(d),
                            None => return Err(at("invalid escape sequence in string")),
                        }
                    }
                    other => s.push(other),
                }
            }
            out.push((Tok::Str(s), start_line, start_col));
            continue;
        }
        if c == '<' && chars.get(i + 1) == Some(&'<') {
            return Err(at("heredoc strings are not supported by the emulator"));
        }
        let starts_number =
            c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if starts_number {
            let mut s = String::new();
            while let Some(&ch) = chars.get(i) {
                let sign_after_exponent =
                    (ch == '-' || ch == '+') && s.ends_with(['e', 'E']) && !s.starts_with("0x");
                if ch.is_ascii_alphanumeric()
                    || ch == '.'
                    || sign_after_exponent
                    || (ch == '-' && s.is_empty())
                {
                    s.push(ch);
                    advance(&mut i, &mut line, &mut col, ch);
                } else {
                    break;
                }
            }
            let value = parse_number(&s).ok_or_else(|| at(&format!("invalid number {s:?}")))?;
            out.push((Tok::Num(value), start_line, start_col));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(&ch) = chars.get(i) {
                if ch.is_alphanumeric() || ch == '_' || ch == '-' || ch == '.' {
                    s.push(ch);
                    advance(&mut i, &mut line, &mut col, ch);
                } else {
                    break;
                }
            }
            let tok = match s.as_str() {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                _ => Tok::Ident(s),
            };
            out.push((tok, start_line, start_col));
            continue;
        }
        return Err(at(&format!("illegal character {c:?}")));
    }
    out.push((Tok::Eof, line, col));
    Ok(out)
}

/// Decimal, hexadecimal (`0x`) and octal (leading `0`) integers, and floats.
fn parse_number(s: &str) -> Option<Value> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let sign = |n: i64| if negative { -n } else { n };
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        return i64::from_str_radix(hex, 16)
            .ok()
            .map(|n| Value::Int(sign(n)));
    }
    if digits.contains(['.', 'e', 'E']) {
        return s.parse::<f64>().ok().map(Value::Float);
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return i64::from_str_radix(&digits[1..], 8)
            .ok()
            .map(|n| Value::Int(sign(n)));
    }
    digits.parse::<i64>().ok().map(|n| Value::Int(sign(n)))
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Spanned {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Spanned {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        tok
    }

    fn error(&self, msg: &str) -> String {
        let (_, line, col) = self.peek();
        format!("At {line}:{col}: {msg}")
    }

    /// Items up to EOF (top level) or the closing brace (nested, not consumed).
    fn object_items(&mut self, nested: bool) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        loop {
            match &self.peek().0 {
                Tok::Comma => {
                    self.next();
                    continue;
                }
                Tok::Eof if !nested => return Ok(items),
                Tok::Eof => return Err(self.error("object expected closing RBRACE got: EOF")),
                Tok::RBrace if nested => return Ok(items),
                _ => {}
            }
            items.push(self.item()?);
        }
    }

    fn item(&mut self) -> Result<Item, String> {
        let mut keys = Vec::new();
        while let Tok::Ident(k) | Tok::Str(k) = &self.peek().0 {
            keys.push(k.clone());
            self.next();
        }
        if keys.is_empty() {
            let got = self.peek().0.describe();
            return Err(self.error(&format!("expected: IDENT | STRING got: {got}")));
        }
        match &self.peek().0 {
            Tok::Assign if keys.len() == 1 => {
                self.next();
                let value = self.value()?;
                Ok(Item { keys, value })
            }
            Tok::Assign => Err(self.error("nested object expected: LBRACE got: ASSIGN")),
            Tok::LBrace => {
                self.next();
                let items = self.object_items(true)?;
                self.next();
                Ok(Item {
                    keys,
                    value: Value::Object(items),
                })
            }
            _ => Err(self.error(&format!(
                "key '{}' expected start of object ('{{') or assignment ('=')",
                keys.join(" ")
            ))),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        let (tok, line, col) = self.next();
        match tok {
            Tok::Str(s) => Ok(Value::Str(s)),
            Tok::Num(v) => Ok(v),
            Tok::Bool(b) => Ok(Value::Bool(b)),
            Tok::LBrace => {
                let items = self.object_items(true)?;
                self.next();
                Ok(Value::Object(items))
            }
            Tok::LBrack => {
                let mut values = Vec::new();
                loop {
                    match &self.peek().0 {
                        Tok::RBrack => {
                            self.next();
                            return Ok(Value::List(values));
                        }
                        Tok::Comma if !values.is_empty() => {
                            self.next();
                        }
                        _ => values.push(self.value()?),
                    }
                }
            }
            other => Err(format!(
                "At {line}:{col}: Unknown token: {}",
                other.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(keys: &[&str], value: Value) -> Item {
        Item {
            keys: keys.iter().map(|k| (*k).to_string()).collect(),
            value,
        }
    }

    #[test]
    fn blocks_attributes_and_comments() {
        let text = "# comment\nlength = 20 // trailing\n/* block\n */ rule \"charset\" {\n  charset = \"a\\\"b\\u00e9\"\n  min-chars = 0x2\n}\n";
        let items = parse(text).expect("parses");
        assert_eq!(
            items,
            vec![
                item(&["length"], Value::Int(20)),
                item(
                    &["rule", "charset"],
                    Value::Object(vec![
                        item(&["charset"], Value::Str("a\"bé".into())),
                        item(&["min-chars"], Value::Int(2)),
                    ])
                ),
            ]
        );
    }

    #[test]
    fn json_lists_of_objects_become_blocks() {
        let items = parse(r#"{"length": 8, "rule": [{"charset": {"charset": "ab"}}, {"charset": [{"charset": "cd"}]}]}"#)
            .expect("parses");
        let rule = |cs: &str| {
            item(
                &["rule"],
                Value::Object(vec![item(
                    &["charset"],
                    Value::Object(vec![item(&["charset"], Value::Str(cs.into()))]),
                )]),
            )
        };
        assert_eq!(
            items,
            vec![item(&["length"], Value::Int(8)), rule("ab"), rule("cd")]
        );
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        assert_eq!(
            parse("length 20").expect_err("no assignment"),
            "At 1:8: key 'length' expected start of object ('{') or assignment ('=')"
        );
        assert_eq!(
            parse("a = \"open").expect_err("unterminated"),
            "At 1:5: literal not terminated"
        );
        assert!(parse("rule \"charset\" {")
            .expect_err("unclosed")
            .starts_with("At 1:17: "));
        assert!(parse("{\"length\": }")
            .expect_err("bad json")
            .starts_with("At 1:"));
    }
}

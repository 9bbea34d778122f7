//! Just enough of Rust's lexical grammar for the tidy rules: comments and the contents of
//! string and character literals are blanked (so a word in a doc comment or a message is not
//! code), then the rest is cut into tokens with their line numbers.

/// `source` with comments and literal contents replaced by spaces; newlines, quotes and
/// everything else stay where they were, so line numbers still hold.
pub fn blank(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let n = s.len();
    let mut out = String::with_capacity(source.len());
    let blank_to = |out: &mut String, from: &[char]| {
        for &c in from {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < n {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = s[i..].iter().position(|&c| c == '\n').map_or(n, |p| i + p);
            blank_to(&mut out, &s[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (0usize, i);
            while j < n {
                if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_to(&mut out, &s[i..j.min(n)]);
            i = j.min(n);
        } else if let Some(len) = raw_string_start(&s, i).filter(|_| i == 0 || !ident(s[i - 1])) {
            // r"..", r#".."#, br#".."#: ends at a quote followed by as many #s.
            let hashes = s[i..i + len].iter().filter(|&&c| c == '#').count();
            let mut j = i + len;
            while j < n
                && !(s[j] == '"'
                    && s[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&c| c == '#')
                        .count()
                        == hashes)
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(n);
            out.extend(&s[i..i + len]);
            blank_to(&mut out, &s[i + len..j.min(n)]);
            out.extend(&s[j.min(n)..end]);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < n && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            out.push('"');
            blank_to(&mut out, &s[i + 1..j.min(n)]);
            if j < n {
                out.push('"');
            }
            i = j + 1;
        } else if c == '\'' && next == Some('\\') {
            // '\n', '\'', '\u{..}'
            let end = s[i + 2..]
                .iter()
                .position(|&c| c == '\'')
                .map_or(n, |p| i + 2 + p + 1);
            blank_to(&mut out, &s[i..end]);
            i = end;
        } else if c == '\'' && s.get(i + 2) == Some(&'\'') {
            blank_to(&mut out, &s[i..i + 3]);
            i += 3;
        } else {
            // A lifetime's quote, or anything else, is kept.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The length of a raw string's opening (`r"`, `r#"`, `br##"`...) at `i`, if one starts there.
fn raw_string_start(s: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if s.get(j) == Some(&'b') {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    while s.get(j) == Some(&'#') {
        j += 1;
    }
    (s.get(j) == Some(&'"')).then_some(j + 1 - i)
}

/// One token of blanked code: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: usize,
}

impl Token {
    pub fn is(&self, text: &str) -> bool {
        self.text == text
    }
}

/// The tokens of blanked code (see [`blank`]); literals' quotes come out as `"` tokens.
pub fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_whitespace() {
        } else if c.is_alphanumeric() || c == '_' {
            let mut text = String::from(c);
            while let Some(&d) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                text.push(d);
                chars.next();
            }
            out.push(Token { text, line });
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push(Token {
                text: "::".into(),
                line,
            });
        } else {
            out.push(Token {
                text: c.into(),
                line,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_literals_are_blanked_lines_kept() {
        let src = "let a = \"println!(x)\"; // reqwest\n/* kube::\n /* nested */ */ b('\\'', 'c', r#\"env::var\"#);\nfn f<'a>() {}";
        let code = blank(src);
        assert_eq!(code.lines().count(), src.lines().count());
        for word in ["println", "reqwest", "kube", "env", "nested"] {
            assert!(!code.contains(word), "{word} in {code}");
        }
        assert!(code.contains("fn f<'a>()"), "{code}");
        let t: Vec<String> = tokens(&code).into_iter().map(|t| t.text).collect();
        assert_eq!(&t[..4], ["let", "a", "=", "\""]);
        assert_eq!(tokens(&code).last().unwrap().line, 4);
    }
}

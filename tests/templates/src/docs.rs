//! The documentation's own checks: README.md stays a front door (at most
//! [`README_MAX_LINES`] lines), and every relative link and `#anchor` in README.md,
//! ARCHITECTURE.md and docs/*.md resolves: the file exists, and an anchor names a heading of
//! the linked Markdown file as GitHub derives it ([`github_slug`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::Problem;

/// README.md is a front door; the detail lives in docs/.
pub const README_MAX_LINES: usize = 220;

/// The documents checked, relative to the repository root: README.md, ARCHITECTURE.md and
/// every docs/*.md, those that exist.
pub fn documents(repo: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo.join("docs"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|p| p.file_name().map(|n| Path::new("docs").join(n)))
        .collect();
    docs.sort();
    let mut all = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    all.extend(docs);
    all.retain(|p| repo.join(p).is_file());
    all
}

/// Every problem of the documents under `repo`.
pub fn check(repo: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut anchors: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for doc in documents(repo) {
        let file = doc.display().to_string();
        let text = match std::fs::read_to_string(repo.join(&doc)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::new(&file, None, "", format!("cannot read: {e}")));
                continue;
            }
        };
        let lines = text.lines().count();
        if doc == Path::new("README.md") && lines > README_MAX_LINES {
            problems.push(Problem::new(
                &file,
                None,
                "",
                format!(
                    "{lines} lines, more than {README_MAX_LINES}: README is the front door; \
                     move the detail to docs/"
                ),
            ));
        }
        for (line, target) in links(&text) {
            if is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                repo.join(&doc)
            } else {
                repo.join(doc.parent().unwrap_or(Path::new(""))).join(path)
            };
            let at = format!("line {line}");
            let Ok(linked) = linked.canonicalize() else {
                problems.push(Problem::new(
                    &file,
                    None,
                    &at,
                    format!("link to {target}: no such file"),
                ));
                continue;
            };
            let Some(anchor) = anchor else { continue };
            if linked.extension().is_none_or(|x| x != "md") {
                continue;
            }
            let known = anchors.entry(linked.clone()).or_insert_with(|| {
                std::fs::read_to_string(&linked)
                    .map(|t| headings(&t))
                    .unwrap_or_default()
            });
            if !known.contains(anchor) {
                problems.push(Problem::new(
                    &file,
                    None,
                    &at,
                    format!("link to {target}: no heading with the anchor #{anchor} there"),
                ));
            }
        }
    }
    problems
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose(markdown: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let t = line.trim_start();
        let run = |c: char| t.chars().take_while(|&x| x == c).count();
        match fence {
            Some((c, n)) => {
                if run(c) >= n && t.trim_start_matches(c).trim().is_empty() {
                    fence = None;
                }
            }
            None => {
                let (b, tl) = (run('`'), run('~'));
                if b >= 3 {
                    fence = Some(('`', b));
                } else if tl >= 3 {
                    fence = Some(('~', tl));
                } else {
                    out.push((i + 1, line));
                }
            }
        }
    }
    out
}

/// `line` with the content of inline code spans blanked (a link inside backticks is text).
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&c| c == '`').count();
        // The closing run: exactly n backticks.
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            let m = chars[j..].iter().take_while(|&&c| c == '`').count();
            if m == n {
                close = Some(j);
                break;
            }
            j += m.max(1);
        }
        match close {
            Some(j) => {
                out.extend(std::iter::repeat_n(' ', j + n - i));
                i = j + n;
            }
            None => {
                out.extend(&chars[i..i + n]);
                i += n;
            }
        }
    }
    out
}

/// Every link target with its line: inline links and images (`[text](target "title")`) and
/// reference definitions (`[label]: target`), outside code.
pub fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(markdown) {
        let plain = without_code_spans(line);
        let t = plain.trim_start();
        if let Some(rest) = t.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]:") {
                if let Some(target) = target.split_whitespace().next() {
                    out.push((n, target.trim_matches(['<', '>']).to_owned()));
                }
                continue;
            }
        }
        let mut s = plain.as_str();
        while let Some(k) = s.find("](") {
            let after = &s[k + 2..];
            let mut depth = 0usize;
            let mut end = None;
            for (j, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = Some(j);
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let Some(end) = end else { break };
            let inner = after[..end].trim();
            let target = match inner.strip_prefix('<') {
                Some(x) => x.split('>').next().unwrap_or(""),
                None => inner.split_whitespace().next().unwrap_or(""),
            };
            out.push((n, target.to_owned()));
            s = &after[end..];
        }
    }
    out
}

/// The anchors of every ATX heading (`#` to `######`), as GitHub makes them: the second
/// heading with the same slug gets `-1`, the third `-2`.
pub fn headings(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose(markdown) {
        let t = line.trim_start();
        if line.len() - t.len() > 3 {
            continue;
        }
        let hashes = t.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let rest = &t[hashes..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        // An optional closing sequence of `#`s after a space.
        let mut text = rest.trim();
        let stripped = text.trim_end_matches('#');
        if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
            text = stripped.trim_end();
        }
        let slug = github_slug(text);
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 { slug } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// GitHub's anchor for a heading: its text as rendered (a link keeps its text, code its
/// content), lowercased, with every character but letters, digits, `-`, `_` and spaces
/// removed, and each space turned into `-`.
pub fn github_slug(heading: &str) -> String {
    let mut text = String::new();
    let mut s = heading;
    // `[text](url)` renders as `text`.
    while let Some(open) = s.find('[') {
        let Some(close) = s[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = s[close..].find(')').map(|e| close + e) else {
            break;
        };
        text.push_str(&s[..open]);
        text.push_str(&s[open + 1..close]);
        s = &s[end + 1..];
    }
    text.push_str(s);
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_githubs_rules() {
        assert_eq!(
            github_slug("Plan before you run (`--dry-run`)"),
            "plan-before-you-run---dry-run"
        );
        assert_eq!(
            github_slug("Install (Argo Workflows v4)"),
            "install-argo-workflows-v4"
        );
        assert_eq!(github_slug("Once, in Vault"), "once-in-vault");
        assert_eq!(github_slug("`make bench`"), "make-bench");
        assert_eq!(github_slug("See [the docs](x.md) now"), "see-the-docs-now");
        assert_eq!(
            github_slug("read_bootstrap — Ünïcode"),
            "read_bootstrap--ünïcode"
        );
    }

    #[test]
    fn headings_number_duplicates_and_skip_code() {
        let md = "# A\n## A\n```sh\n# not a heading\n```\n### A ##\n####### seven\n#no\n";
        let h: Vec<String> = headings(md).into_iter().collect();
        assert_eq!(h, ["a", "a-1", "a-2"]);
    }

    #[test]
    fn links_outside_code_are_found() {
        let md = "see [a](docs/a.md#x) and ![i](img.png \"t\") and `[no](no.md)`\n\
                  ```\n[no](fenced.md)\n```\n[ref]: <docs/b.md>\n[p](f(1).md)\n";
        let l: Vec<(usize, String)> = links(md);
        let want = [
            (1, "docs/a.md#x"),
            (1, "img.png"),
            (5, "docs/b.md"),
            (6, "f(1).md"),
        ];
        assert_eq!(l, want.map(|(n, t)| (n, t.to_owned())).to_vec(), "{l:?}");
    }
}

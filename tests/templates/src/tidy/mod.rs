//! The code's own rules (ARCHITECTURE.md and the developers' guide), checked over the step
//! sources, `steps/*/src` (the `secops` library and the step binaries):
//!
//! - only `vault/` uses reqwest, and only `kube/` the kube client (`kube::` paths);
//! - only the entry point reads the environment: `cli` and `steps` (clap's env fallbacks) and
//!   `run` (VAULT_TOKEN, SECOPS_LOG);
//! - only the printer prints: [`PRINTERS`];
//! - a step's `main.rs` is at most [`MAIN_MAX_LINES`] lines and calls `secops::run::main`;
//! - no file passes [`MAX_LINES`] lines, except the [`BIG_FILES`], each frozen at its size;
//! - ARCHITECTURE.md's code map names every module and no module that does not exist;
//! - no import cycle between the library's modules.
//!
//! Each rule is a function of the sources, so tests run it on synthetic ones and see it fire.

pub mod codemap;
pub mod lexer;
pub mod modules;

use std::path::Path;

use crate::Problem;
use lexer::Token;

/// A source file: its path relative to the repository (with `/`), text and tokens.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub lines: usize,
    pub tokens: Vec<Token>,
}

impl Source {
    pub fn new(path: &str, text: &str) -> Source {
        Source {
            path: path.to_owned(),
            lines: text.lines().count(),
            tokens: lexer::tokens(&lexer::blank(text)),
        }
    }

    fn in_any(&self, places: &[&str]) -> bool {
        places.iter().any(|p| self.path.starts_with(p))
    }

    /// Token `i` is `text` and the tokens after it are `next` (`None` matches any one).
    fn at(&self, i: usize, text: &str, next: &[Option<&str>]) -> bool {
        self.tokens[i].is(text)
            && next.iter().enumerate().all(|(k, n)| {
                self.tokens
                    .get(i + 1 + k)
                    .is_some_and(|t| n.is_none_or(|n| t.is(n)))
            })
    }

    fn preceded_by(&self, i: usize, text: &str) -> bool {
        i > 0 && self.tokens[i - 1].is(text)
    }
}

/// The longest a source file may be. New code goes into new modules.
pub const MAX_LINES: usize = 600;

/// Files that were longer than [`MAX_LINES`] when the rule came: each frozen at the size it
/// had then (it may shrink, never grow) and to be split into smaller modules; once split
/// below the limit, the entry goes.
pub const BIG_FILES: &[(&str, usize)] = &[
    // Empty since kube.rs became kube/ (the last one); keep it so a file that must grow
    // past the limit for a while is a visible, reviewed exception.
];

/// A step binary's `main.rs`: a doc line and `main` calling `secops::run::main`.
pub const MAIN_MAX_LINES: usize = 6;

/// The one printer: audit and plan lines on stdout, errors and logs on stderr.
pub const PRINTERS: [&str; 1] = ["steps/secops/src/console.rs"];

/// Where the entry point reads the environment: the shared flags (`cli`), each step's flags
/// with their env fallbacks (`steps`, and its submodules under `steps/`), and `run`
/// (VAULT_TOKEN, SECOPS_LOG).
pub const ENV_READERS: [&str; 4] = [
    "steps/secops/src/cli.rs",
    "steps/secops/src/steps.rs",
    "steps/secops/src/steps/",
    "steps/secops/src/run.rs",
];

/// Every `.rs` file under `steps/*/src`, sorted.
pub fn load(repo: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(repo.join("steps"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("src"))
        .collect();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
        {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(repo).unwrap_or(p);
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            Source::new(&rel, &text)
        })
        .collect()
}

/// Every rule over the step sources and ARCHITECTURE.md of the repository at `repo`.
pub fn check(repo: &Path) -> Vec<Problem> {
    let sources = load(repo);
    let architecture = std::fs::read_to_string(repo.join("ARCHITECTURE.md")).unwrap_or_default();
    let mut p = Vec::new();
    p.extend(reqwest_only_in_vault(&sources));
    p.extend(kube_client_only_in_kube(&sources));
    p.extend(env_only_at_the_entry(&sources));
    p.extend(printing_only_in_the_printer(&sources));
    p.extend(thin_mains(&sources));
    p.extend(file_sizes(&sources, BIG_FILES));
    p.extend(code_map(&sources, &architecture));
    p.extend(no_import_cycles(&sources));
    p
}

fn problem(s: &Source, line: usize, message: impl Into<String>) -> Problem {
    Problem::new(&s.path, None, format!("line {line}"), message)
}

/// Every token index of every source outside `allowed` where `matches` holds.
fn scan(
    sources: &[Source],
    allowed: &[&str],
    message: &str,
    matches: impl Fn(&Source, usize) -> bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in sources.iter().filter(|s| !s.in_any(allowed)) {
        for i in 0..s.tokens.len() {
            if matches(s, i) {
                let t = &s.tokens[i];
                out.push(problem(s, t.line, format!("`{}`: {message}", t.text)));
            }
        }
    }
    out
}

pub fn reqwest_only_in_vault(sources: &[Source]) -> Vec<Problem> {
    scan(
        sources,
        &["steps/secops/src/vault/"],
        "only the Vault client (steps/secops/src/vault/) speaks HTTP to Vault",
        |s, i| s.tokens[i].is("reqwest"),
    )
}

/// `kube::...` that is the kube crate's (not `crate::kube::`, `super::kube::`).
pub fn kube_client_only_in_kube(sources: &[Source]) -> Vec<Problem> {
    scan(
        sources,
        &["steps/secops/src/kube/"],
        "only the Kubernetes side (steps/secops/src/kube/) uses the kube client",
        |s, i| s.at(i, "kube", &[Some("::")]) && !s.preceded_by(i, "::"),
    )
}

pub fn env_only_at_the_entry(sources: &[Source]) -> Vec<Problem> {
    const READS: [&str; 6] = ["var", "var_os", "vars", "vars_os", "args", "args_os"];
    scan(
        sources,
        &ENV_READERS,
        "only the entry point (cli, steps, run) reads the environment; pass the value down",
        |s, i| {
            (s.at(i, "env", &[Some("::"), None])
                && READS.contains(&s.tokens[i + 2].text.as_str()))
                || s.tokens[i].is("from_env")
                || s.tokens[i].is("try_from_env")
                // clap's `#[arg(env = "...")]`
                || (s.at(i, "env", &[Some("="), Some("\"")]))
        },
    )
}

pub fn printing_only_in_the_printer(sources: &[Source]) -> Vec<Problem> {
    const MACROS: [&str; 5] = ["println", "print", "eprintln", "eprint", "dbg"];
    scan(
        sources,
        &PRINTERS,
        "only the printer (steps/secops/src/console.rs) writes to stdout or stderr",
        |s, i| {
            let t = &s.tokens[i];
            (MACROS.contains(&t.text.as_str()) && s.at(i, &t.text, &[Some("!")]))
                || ((t.is("stdout") || t.is("stderr"))
                    && (s.preceded_by(i, "::") || s.at(i, &t.text, &[Some("(")])))
        },
    )
}

pub fn thin_mains(sources: &[Source]) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in sources {
        let Some(rest) = s.path.strip_prefix("steps/") else {
            continue;
        };
        if rest.starts_with("secops/") || !rest.ends_with("/src/main.rs") {
            continue;
        }
        if s.lines > MAIN_MAX_LINES {
            out.push(problem(
                s,
                s.lines,
                format!(
                    "{} lines: a step's main.rs stays at most {MAIN_MAX_LINES}; its logic goes in steps/secops",
                    s.lines
                ),
            ));
        }
        let calls_run = (0..s.tokens.len()).any(|i| {
            s.at(
                i,
                "secops",
                &[Some("::"), Some("run"), Some("::"), Some("main")],
            )
        });
        if !calls_run {
            out.push(problem(s, 1, "a step's main calls secops::run::main"));
        }
    }
    out
}

pub fn file_sizes(sources: &[Source], big: &[(&str, usize)]) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in sources {
        match big.iter().find(|(p, _)| *p == s.path) {
            Some((_, frozen)) if s.lines > *frozen => out.push(problem(
                s,
                s.lines,
                format!(
                    "{} lines, more than the {frozen} it is frozen at (tidy::BIG_FILES): \
                     put new code in a new module",
                    s.lines
                ),
            )),
            Some(_) if s.lines <= MAX_LINES => out.push(problem(
                s,
                s.lines,
                format!(
                    "{} lines, within {MAX_LINES} now: remove it from tidy::BIG_FILES",
                    s.lines
                ),
            )),
            None if s.lines > MAX_LINES => out.push(problem(
                s,
                s.lines,
                format!(
                    "{} lines, more than {MAX_LINES}: split it into modules named for what they do",
                    s.lines
                ),
            )),
            _ => {}
        }
    }
    for (p, _) in big {
        if !sources.iter().any(|s| s.path == *p) {
            out.push(Problem::new(
                *p,
                None,
                "",
                "gone: remove it from tidy::BIG_FILES",
            ));
        }
    }
    out
}

pub fn code_map(sources: &[Source], architecture: &str) -> Vec<Problem> {
    let modules = sources
        .iter()
        .filter_map(|s| modules::module_of(&s.path))
        .collect();
    codemap::compare(architecture, &modules)
        .into_iter()
        .map(|m| Problem::new("ARCHITECTURE.md", None, "Code map", m))
        .collect()
}

pub fn no_import_cycles(sources: &[Source]) -> Vec<Problem> {
    let g = modules::graph(sources);
    modules::cycles(&g)
        .into_iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|(b, _)| c.contains(b))
                        .map(move |(b, line)| format!("{a} -> {b} (line {line})"))
                })
                .collect();
            Problem::new(
                modules::LIB_SRC,
                None,
                c.join(", "),
                format!(
                    "import cycle: {}; move what they share into a module of its own",
                    edges.join(", ")
                ),
            )
        })
        .collect()
}

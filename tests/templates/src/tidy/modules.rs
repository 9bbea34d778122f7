//! The module graph of the `secops` library: which module's file refers to which other
//! module (`crate::a::b`, `super::x`, `use crate::{a, b::c}`), and its cycles.
//!
//! A module is a file: `src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`. A
//! reference between a module and its own ancestor or descendant is Rust's module tree, not
//! an import, and is left out; every other reference is an edge.

use std::collections::{BTreeMap, BTreeSet};

use super::lexer::Token;
use super::Source;

/// Where the library's modules are.
pub const LIB_SRC: &str = "steps/secops/src/";

/// `a::b` for `steps/secops/src/a/b.rs`; `None` for other files and for `lib.rs`.
pub fn module_of(path: &str) -> Option<String> {
    let rel = path.strip_prefix(LIB_SRC)?.strip_suffix(".rs")?;
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    (rel != "lib").then(|| rel.replace('/', "::"))
}

/// Module -> the modules it refers to, each with the first line that does.
pub type Graph = BTreeMap<String, BTreeMap<String, usize>>;

pub fn graph(sources: &[Source]) -> Graph {
    let modules: BTreeSet<String> = sources.iter().filter_map(|s| module_of(&s.path)).collect();
    let mut g = Graph::new();
    for s in sources {
        let Some(m) = module_of(&s.path) else {
            continue;
        };
        let edges = g.entry(m.clone()).or_default();
        for (target, line) in references(&m, &s.tokens, &modules) {
            edges.entry(target).or_insert(line);
        }
    }
    g
}

fn related(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}::"));
    under(a, b) || under(b, a)
}

/// The modules `m`'s tokens refer to (not itself, its ancestors or descendants).
fn references(m: &str, tokens: &[Token], modules: &BTreeSet<String>) -> Vec<(String, usize)> {
    let file: Vec<&str> = m.split("::").collect();
    let resolve = |segs: &[String]| -> Option<String> {
        (1..=segs.len())
            .rev()
            .map(|k| segs[..k].join("::"))
            .find(|p| modules.contains(p))
    };
    // Inline modules (`mod tests { .. }`) open at these brace depths.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|b| b.is("{")) => {
                inline.push((tokens[i + 1].text.clone(), depth));
            }
            "crate" | "super" if tokens.get(i + 1).is_some_and(|c| c.is("::")) => {
                let preceded = i > 0 && tokens[i - 1].is("::");
                if !preceded {
                    let mut base: Vec<String> = file.iter().map(|s| s.to_string()).collect();
                    base.extend(inline.iter().map(|(n, _)| n.clone()));
                    let mut j = i;
                    if t.is("crate") {
                        base.clear();
                        j += 2;
                    } else {
                        while tokens.get(j).is_some_and(|x| x.is("super"))
                            && tokens.get(j + 1).is_some_and(|x| x.is("::"))
                        {
                            base.pop();
                            j += 2;
                        }
                    }
                    let mut paths = Vec::new();
                    path_tree(tokens, j, base, &mut paths);
                    for p in paths {
                        if let Some(r) = resolve(&p) {
                            if !related(&r, m) {
                                out.push((r, t.line));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The paths a path (tree) starting at `tokens[i]` names, each prefixed with `prefix`:
/// `a::b::C` is one, `{a, b::{c, d}}` three.
fn path_tree(tokens: &[Token], i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    match tokens.get(i) {
        Some(t) if t.is("{") => {
            let mut j = i + 1;
            while let Some(t) = tokens.get(j) {
                if t.is("}") {
                    return j + 1;
                }
                if t.is(",") {
                    j += 1;
                    continue;
                }
                j = path_tree(tokens, j, prefix.clone(), out).max(j + 1);
            }
            j
        }
        Some(t) if t.text.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
            let mut p = prefix;
            p.push(t.text.clone());
            if tokens.get(i + 1).is_some_and(|c| c.is("::")) {
                path_tree(tokens, i + 2, p, out)
            } else {
                out.push(p);
                i + 1
            }
        }
        _ => {
            out.push(prefix);
            i + 1
        }
    }
}

/// Every set of modules that refer to each other in a circle (strongly connected components
/// of more than one module), each sorted.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Kosaraju: finish order on g, then components on the reverse graph.
    let nodes: Vec<&String> = g.keys().collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    fn visit<'a>(
        n: &'a String,
        g: &'a Graph,
        seen: &mut BTreeSet<&'a String>,
        order: &mut Vec<&'a String>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in g.get(n).into_iter().flat_map(|e| e.keys()) {
            visit(m, g, seen, order);
        }
        order.push(n);
    }
    for n in &nodes {
        visit(n, g, &mut seen, &mut order);
    }
    let mut reverse: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (a, es) in g {
        for b in es.keys() {
            reverse.entry(b).or_default().push(a);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![n];
        assigned.insert(n);
        while let Some(x) = stack.pop() {
            comp.push(x.clone());
            for y in reverse.get(x).into_iter().flatten() {
                if assigned.insert(*y) {
                    stack.push(y);
                }
            }
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(path: &str, text: &str) -> Source {
        Source::new(path, text)
    }

    #[test]
    fn references_resolve_use_trees_super_and_inline_modules() {
        let s = [
            src(
                "steps/secops/src/lib.rs",
                "pub mod a; pub mod b; pub mod c; pub mod v;",
            ),
            src(
                "steps/secops/src/a.rs",
                "use crate::{b::{X, Y}, v::kv::Z};\n// crate::c::Q\nfn f() { crate::c::g() }",
            ),
            src(
                "steps/secops/src/b.rs",
                "mod tests { use super::*; use super::super::c; }",
            ),
            src("steps/secops/src/c.rs", "fn g() {}"),
            src(
                "steps/secops/src/v/mod.rs",
                "mod kv; use kv::Z; pub(super) fn h() {}",
            ),
            src(
                "steps/secops/src/v/kv.rs",
                "use super::h; use crate::v::h as i; use super::sib::W;",
            ),
            src("steps/secops/src/v/sib.rs", ""),
        ];
        let g = graph(&s);
        let edges = |m: &str| -> Vec<(&str, usize)> {
            g[m].iter().map(|(k, v)| (k.as_str(), *v)).collect()
        };
        assert_eq!(edges("a"), [("b", 1), ("c", 3), ("v::kv", 1)]);
        assert_eq!(edges("b"), [("c", 1)]);
        assert_eq!(edges("v"), []);
        assert_eq!(edges("v::kv"), [("v::sib", 1)]);
        assert!(cycles(&g).is_empty());
    }

    #[test]
    fn a_cycle_through_three_modules_is_one_component() {
        let s = [
            src("steps/secops/src/a.rs", "use crate::b::X;"),
            src("steps/secops/src/b.rs", "use crate::c::X;"),
            src("steps/secops/src/c.rs", "use crate::a::X;"),
            src("steps/secops/src/d.rs", "use crate::a::X;"),
        ];
        assert_eq!(cycles(&graph(&s)), [["a", "b", "c"]]);
    }
}

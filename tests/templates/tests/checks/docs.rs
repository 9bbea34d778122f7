//! README.md stays a front door, and every relative link and anchor of the documentation
//! resolves; the self-test proves the check fires on each kind of breakage.

use std::path::Path;

use template_checks::docs::{check, README_MAX_LINES};
use template_checks::{report, Locations};

use super::assert_exactly;

#[test]
fn the_readme_is_short_and_every_doc_link_resolves() {
    let loc = Locations::locate().unwrap_or_else(|e| panic!("{e}"));
    let problems = check(&loc.repo);
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn a_long_readme_a_missing_file_and_a_wrong_anchor_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let good = "[steps](docs/steps.md#rotate) [self](#title) [arch](ARCHITECTURE.md)\n";
    let filler = "text\n".repeat(README_MAX_LINES);
    write(
        "README.md",
        &format!("# Title\n{good}[gone](docs/gone.md)\n{filler}"),
    );
    write("ARCHITECTURE.md", "# Architecture\n");
    write(
        "docs/steps.md",
        "# Steps\n## rotate\n[back](../README.md#title) [bad](../README.md#no-such)\n\
         [web](https://example.com/x.md#y) `[code](nowhere.md)`\n",
    );
    let problems = check(dir.path());
    assert_exactly(
        &problems,
        &[
            ("README.md", "", "more than 220"),
            ("README.md", "line 3", "docs/gone.md: no such file"),
            (
                "docs/steps.md",
                "line 3",
                "no heading with the anchor #no-such",
            ),
        ],
    );
    // The same tree, repaired, is clean.
    write("README.md", &format!("# Title\n{good}"));
    write(
        "docs/steps.md",
        "# Steps\n## rotate\n[back](../README.md#title)\n",
    );
    assert!(check(dir.path()).is_empty());
    assert!(Path::new(dir.path()).join("docs/steps.md").is_file());
}

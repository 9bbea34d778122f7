use std::collections::BTreeSet;

use template_checks::binaries::image_binary;
use template_checks::report;
use template_checks::xref::doc_containers;

use super::setup;

#[test]
fn the_real_templates_have_no_problems() {
    let s = setup();
    let problems = s.checker.check(&s.templates);
    assert!(problems.is_empty(), "{}", report(&problems));
}

/// The other direction of "every template runs an existing binary": a step nobody runs is
/// drift too (a template was dropped or renamed).
#[test]
fn every_step_binary_is_run_by_some_template() {
    let s = setup();
    let run: BTreeSet<&str> = s
        .templates
        .docs
        .iter()
        .flat_map(doc_containers)
        .filter_map(|(_, c)| image_binary(c["image"].as_str()?).map(|(name, _)| name))
        .collect();
    let all: BTreeSet<&str> = s.checker.binaries.names().into_iter().collect();
    assert_eq!(run, all);
}

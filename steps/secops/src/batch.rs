//! Batches: one process acts on a list of references with bounded concurrency.
//!
//! Secrets are read with label-selected LIST pages per namespace instead of one GET each;
//! each page's referenced Secrets are handled (at most `concurrency` at once) before the next
//! page is fetched, so only one page of values is held at a time. A referenced Secret no page
//! held (deleted, or its label removed) is looked up by name, so every item gets the same
//! answer a GET would give. Mutations stay guarded by uid/resourceVersion preconditions.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use futures::stream::{self, StreamExt};

use crate::error::Result;
use crate::exit::Exit;
use crate::kube::{BootstrapSecret, Kube};
use crate::outputs::Outputs;
use crate::reference::SecretRef;
use crate::vocab::bootstrap_selector;

/// Secrets per LIST page: bounds the values held at once.
pub const PAGE: u32 = 500;

/// How a step gets the live Secret a reference names.
#[derive(Debug)]
pub enum Fetch {
    /// GET it (one reference).
    Get,
    /// LIST it by name (a batch item its pages did not hold).
    ByName,
    /// Already read from a LIST page.
    Listed(Box<BootstrapSecret>),
}

impl Fetch {
    /// The live Secret, `None` when it does not exist.
    pub async fn secret(self, kube: &Kube, r: &SecretRef) -> Result<Option<BootstrapSecret>> {
        match self {
            Fetch::Get => kube.get_secret(&r.namespace, &r.name).await,
            Fetch::ByName => kube.find_secret(&r.namespace, &r.name).await,
            Fetch::Listed(s) => Ok(Some(*s)),
        }
    }
}

/// Runs `f` for every reference (by index), returning the results in input order.
pub async fn for_each<T, F, Fut>(
    refs: &[SecretRef],
    kube: &Kube,
    concurrency: usize,
    f: F,
) -> Vec<Result<T>>
where
    F: Fn(usize, Fetch) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let concurrency = concurrency.max(1);
    let mut results: Vec<Option<Result<T>>> = (0..refs.len()).map(|_| None).collect();
    let mut by_ns: BTreeMap<&str, HashMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, r) in refs.iter().enumerate() {
        by_ns
            .entry(r.namespace.as_str())
            .or_default()
            .entry(r.name.as_str())
            .or_default()
            .push(i);
    }
    let selector = bootstrap_selector();
    for (ns, mut wanted) in by_ns {
        let mut next: Option<String> = None;
        loop {
            let (page, cont) = match kube
                .list_secrets_page(ns, &selector, PAGE, next.as_deref())
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // Each remaining item looks itself up and reports its own failure.
                    tracing::warn!(namespace = ns, error = %e, "batch LIST failed; looking up each Secret by name");
                    break;
                }
            };
            let jobs: Vec<(usize, BootstrapSecret)> = page
                .into_iter()
                .filter_map(|s| {
                    let ix = wanted.get_mut(s.name.as_str())?;
                    // A name listed twice in the batch: the first gets the page's copy, the
                    // others look it up again (their own read, their own preconditions).
                    let i = ix.remove(0);
                    if ix.is_empty() {
                        wanted.remove(s.name.as_str());
                    }
                    Some((i, s))
                })
                .collect();
            let done: Vec<(usize, Result<T>)> = stream::iter(jobs)
                .map(|(i, s)| {
                    let fut = f(i, Fetch::Listed(Box::new(s)));
                    async move { (i, fut.await) }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for (i, res) in done {
                results[i] = Some(res);
            }
            match cont {
                Some(c) => next = Some(c),
                None => break,
            }
        }
        let rest: Vec<usize> = wanted.into_values().flatten().collect();
        let done: Vec<(usize, Result<T>)> = stream::iter(rest)
            .map(|i| {
                let fut = f(i, Fetch::ByName);
                async move { (i, fut.await) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (i, res) in done {
            results[i] = Some(res);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every reference is handled once"))
        .collect()
}

/// The one batch dispatcher: every reference through `f` (see [`for_each`]), then the
/// per-item results as `result.json`; the exit code is the worst item's.
pub async fn run_all<T, F, Fut>(
    refs: &[SecretRef],
    kube: &Kube,
    concurrency: usize,
    outputs: &Outputs,
    f: F,
) -> Result<Exit>
where
    T: serde::Serialize,
    F: Fn(usize, Fetch) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let results = for_each(refs, kube, concurrency, f).await;
    let mut batch = Batch::default();
    for (r, res) in refs.iter().zip(results) {
        batch.add(r, res);
    }
    batch.finish(outputs)
}

/// Per-item results of a batch: one failure never stops the others; the exit code is the
/// worst outcome. Each item is kept as its JSON text (a `serde_json::Value` map costs about
/// ten times as much, which at 10,000 items would be most of the step's memory).
#[derive(Default)]
struct Batch {
    items: Vec<String>,
    exit: Exit,
}

impl Batch {
    fn add<T: serde::Serialize>(&mut self, r: &SecretRef, res: Result<T>) {
        let item = match res {
            Ok(v) => serde_json::json!({ "namespace": r.namespace, "name": r.name, "result": v }),
            Err(e) => {
                crate::console::err(&format!("{}: error: {e}", r.object()));
                self.exit = self.exit.worst(e.exit());
                serde_json::json!({
                    "namespace": r.namespace,
                    "name": r.name,
                    "outcome": e.outcome(),
                    "error": e.to_string(),
                })
            }
        };
        self.items.push(item.to_string());
    }

    fn finish(self, outputs: &Outputs) -> Result<Exit> {
        outputs.write_json_items("result.json", &self.items)?;
        Ok(self.exit)
    }
}

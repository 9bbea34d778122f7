//! The request log tests assert on (how often, which paths, what came back). Only the
//! method, path, query and user agent are kept: bodies and other headers carry secrets.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the whole request had arrived.
    pub at: Instant,
    pub method: String,
    /// Path and query as sent (an empty query is dropped).
    pub path: String,
    /// The status the client got; `None` for a reset or lost response, or while the
    /// request is still in flight.
    pub status: Option<u16>,
    pub user_agent: Option<String>,
    /// Whether a fault acted on it (an injected answer, reset, lost response, delay, hook).
    pub faulted: bool,
}

/// Where a record sits, so its outcome can be filled in; stale after a reset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    generation: u64,
    index: usize,
}

#[derive(Default)]
pub(crate) struct Log {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    records: Vec<Record>,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the log half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, record: Record) -> Slot {
        let mut inner = self.lock();
        inner.records.push(record);
        Slot {
            generation: inner.generation,
            index: inner.records.len() - 1,
        }
    }

    pub fn set_faulted(&self, slot: Slot) {
        if let Some(r) = self.lock().get(slot) {
            r.faulted = true;
        }
    }

    pub fn set_status(&self, slot: Slot, status: u16) {
        if let Some(r) = self.lock().get(slot) {
            r.status = Some(status);
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// The records so far, forgotten in the same step (a reset that hands them over).
    pub fn take(&self) -> Vec<Record> {
        let mut inner = self.lock();
        inner.generation += 1;
        std::mem::take(&mut inner.records)
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.records.clear();
    }
}

impl Inner {
    fn get(&mut self, slot: Slot) -> Option<&mut Record> {
        if slot.generation != self.generation {
            return None;
        }
        self.records.get_mut(slot.index)
    }
}

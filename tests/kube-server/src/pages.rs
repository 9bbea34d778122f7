//! LIST order and paging. etcd returns keys in order and the apiserver pages with
//! opaque `continue` tokens; kube-fake-client returns hash order and only truncates,
//! which would make paging clients stop after the first page.

use serde_json::{json, Value};

const PREFIX: &str = "kube-server:";

/// Where a list is ordered: namespace, then name (etcd's key order).
pub type Key = (String, String);

/// The key a `continue` token resumes after; `None` for tokens we did not issue. Like the
/// apiserver's (which encodes the last key read), a token resumes after an object, not at a
/// position, so objects deleted while a client pages do not shift later pages under it.
pub fn after(token: &str) -> Option<Key> {
    let (ns, name) = token.strip_prefix(PREFIX)?.split_once('/')?;
    Some((ns.to_owned(), name.to_owned()))
}

/// Sorts `list.items` by namespace and name, then keeps `limit` items after `after`,
/// setting `continue` and `remainingItemCount` when more remain.
pub fn page(mut list: Value, after: Option<&Key>, limit: Option<usize>) -> Value {
    let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) else {
        return list;
    };
    let key = |o: &Value| {
        let meta = &o["metadata"];
        (
            meta["namespace"].as_str().unwrap_or_default().to_string(),
            meta["name"].as_str().unwrap_or_default().to_string(),
        )
    };
    items.sort_by_key(key);
    let total = items.len();
    let start = match after {
        Some(k) => items.partition_point(|o| key(o) <= *k),
        None => 0,
    };
    let end = match limit {
        Some(limit) if limit > 0 => start.saturating_add(limit).min(total),
        _ => total,
    };
    let kept: Vec<Value> = items.drain(start..end).collect();
    let last = kept.last().map(key);
    *items = kept;
    if let (true, Some((ns, name))) = (end < total, last) {
        list["metadata"]["continue"] = json!(format!("{PREFIX}{ns}/{name}"));
        list["metadata"]["remainingItemCount"] = json!(total - end);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn sorts_and_pages() {
        let list = json!({"metadata": {"resourceVersion": "1"},
            "items": [item("b", "x"), item("a", "z"), item("a", "y")]});
        let first = page(list.clone(), None, Some(2));
        assert_eq!(names(&first), ["y", "z"]);
        let token = first["metadata"]["continue"].as_str().unwrap_or_default();
        assert_eq!(first["metadata"]["remainingItemCount"], 1);
        let next = page(list.clone(), after(token).as_ref(), Some(2));
        assert_eq!(names(&next), ["x"]);
        assert!(next["metadata"].get("continue").is_none());
        assert_eq!(names(&page(list, None, None)), ["y", "z", "x"]);
        assert_eq!(after("garbage"), None);
    }

    #[test]
    fn deleting_what_was_read_does_not_skip_the_rest() {
        let all = json!({"metadata": {}, "items": [item("a", "1"), item("a", "2"), item("a", "3"), item("a", "4")]});
        let first = page(all, None, Some(2));
        let token = first["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // The client deletes what it read, then asks for the next page.
        let left = json!({"metadata": {}, "items": [item("a", "3"), item("a", "4")]});
        assert_eq!(
            names(&page(left, after(&token).as_ref(), Some(2))),
            ["3", "4"]
        );
    }
}

//! LIST order and paging. etcd returns keys in order and the apiserver pages with
//! opaque `continue` tokens; kube-fake-client returns hash order and only truncates,
//! which would make paging clients stop after the first page.

use serde_json::{json, Value};

const PREFIX: &str = "kube-server:";

/// The offset a `continue` token stands for; `None` for tokens we did not issue.
pub fn offset(token: &str) -> Option<usize> {
    token.strip_prefix(PREFIX)?.parse().ok()
}

/// Sorts `list.items` by namespace and name, then keeps `limit` items from `offset`,
/// setting `continue` and `remainingItemCount` when more remain.
pub fn page(mut list: Value, offset: usize, limit: Option<usize>) -> Value {
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
    let start = offset.min(total);
    let end = match limit {
        Some(limit) if limit > 0 => start.saturating_add(limit).min(total),
        _ => total,
    };
    let kept: Vec<Value> = items.drain(start..end).collect();
    *items = kept;
    if end < total {
        list["metadata"]["continue"] = json!(format!("{PREFIX}{end}"));
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
        let first = page(list.clone(), 0, Some(2));
        assert_eq!(names(&first), ["y", "z"]);
        let token = first["metadata"]["continue"].as_str().unwrap_or_default();
        assert_eq!(first["metadata"]["remainingItemCount"], 1);
        let next = page(list.clone(), offset(token).unwrap_or(usize::MAX), Some(2));
        assert_eq!(names(&next), ["x"]);
        assert!(next["metadata"].get("continue").is_none());
        assert_eq!(names(&page(list, 0, None)), ["y", "z", "x"]);
        assert_eq!(offset("garbage"), None);
    }
}

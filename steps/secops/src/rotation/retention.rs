//! Which old versions a rotation revokes (RFC 5.6 "Revoke old secret"), by count and/or age,
//! always keeping the current version and, through a grace period, the previous one so
//! consumers that have not refreshed yet keep working.

use std::time::Duration;

use crate::vault::kv::Kv2Metadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Revoke {
    /// Soft-delete (recoverable with undelete).
    Delete,
    /// Destroy the data permanently.
    Destroy,
}

#[derive(Debug, Clone)]
pub struct Retention {
    /// Keep the newest N versions (the current one counts).
    pub keep_versions: Option<u64>,
    /// Keep versions younger than this.
    pub keep_for: Option<Duration>,
    /// Keep the previous version until the current one is this old.
    pub grace: Duration,
    pub revoke: Revoke,
}

impl Retention {
    /// Versions to revoke now. With neither a count nor an age, nothing is revoked.
    pub fn to_revoke(&self, meta: &Kv2Metadata, now: jiff::Timestamp) -> Vec<u64> {
        if self.keep_versions.is_none() && self.keep_for.is_none() {
            return Vec::new();
        }
        let current = meta.current_version;
        let current_created = meta
            .versions
            .iter()
            .find(|v| v.version == current)
            .map(|v| v.created);
        let age = |t: jiff::Timestamp| -> Duration { now.duration_since(t).unsigned_abs() };
        let mut newest_first: Vec<_> = meta.versions.iter().collect();
        newest_first.sort_by_key(|v| std::cmp::Reverse(v.version));
        let previous = newest_first
            .iter()
            .find(|v| v.version < current)
            .map(|v| v.version);
        newest_first
            .iter()
            .enumerate()
            .filter(|(_, v)| v.version != current)
            .filter(|(_, v)| match self.revoke {
                Revoke::Delete => !v.deleted && !v.destroyed,
                Revoke::Destroy => !v.destroyed,
            })
            .filter(|(rank, v)| {
                let by_count = self.keep_versions.is_some_and(|n| (*rank as u64) < n);
                let by_age = self.keep_for.is_some_and(|d| age(v.created) < d);
                let in_grace = Some(v.version) == previous
                    && current_created.is_some_and(|c| age(c) < self.grace);
                !(by_count || by_age || in_grace)
            })
            .map(|(_, v)| v.version)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::kv::VersionInfo;

    fn meta(ages_hours: &[(u64, i64)], current: u64) -> (Kv2Metadata, jiff::Timestamp) {
        let now: jiff::Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let versions = ages_hours
            .iter()
            .map(|(v, h)| VersionInfo {
                version: *v,
                created: now - jiff::SignedDuration::from_hours(*h),
                deleted: false,
                destroyed: false,
            })
            .collect();
        (
            Kv2Metadata {
                current_version: current,
                versions,
                custom_metadata: Default::default(),
            },
            now,
        )
    }

    fn r(keep_versions: Option<u64>, keep_for_h: Option<u64>, grace_h: u64) -> Retention {
        Retention {
            keep_versions,
            keep_for: keep_for_h.map(|h| Duration::from_secs(h * 3600)),
            grace: Duration::from_secs(grace_h * 3600),
            revoke: Revoke::Delete,
        }
    }

    #[test]
    fn by_count_keeps_the_newest() {
        let (m, now) = meta(&[(1, 100), (2, 50), (3, 10), (4, 0)], 4);
        assert_eq!(r(Some(2), None, 0).to_revoke(&m, now), vec![1, 2]);
        assert_eq!(r(Some(10), None, 0).to_revoke(&m, now), Vec::<u64>::new());
    }

    #[test]
    fn by_age_keeps_the_young() {
        let (m, now) = meta(&[(1, 100), (2, 50), (3, 10), (4, 0)], 4);
        assert_eq!(r(None, Some(24), 0).to_revoke(&m, now), vec![1, 2]);
        // Either rule keeps a version.
        assert_eq!(r(Some(3), Some(60), 0).to_revoke(&m, now), vec![1]);
    }

    #[test]
    fn grace_keeps_the_previous_version_while_the_current_is_young() {
        let (m, now) = meta(&[(1, 100), (2, 50), (3, 0)], 3);
        assert_eq!(r(Some(1), None, 2).to_revoke(&m, now), vec![1]);
        assert_eq!(r(Some(1), None, 0).to_revoke(&m, now), vec![1, 2]);
    }

    #[test]
    fn nothing_without_a_rule_and_never_the_current_or_already_revoked() {
        let (mut m, now) = meta(&[(1, 100), (2, 50), (3, 0)], 3);
        assert!(r(None, None, 0).to_revoke(&m, now).is_empty());
        m.versions[0].deleted = true;
        assert_eq!(r(Some(1), None, 0).to_revoke(&m, now), vec![2]);
        let mut destroy = r(Some(1), None, 0);
        destroy.revoke = Revoke::Destroy;
        assert_eq!(
            destroy.to_revoke(&m, now),
            vec![1, 2],
            "destroy also takes soft-deleted ones"
        );
    }
}

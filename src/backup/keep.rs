//! Which snapshots `backup prune` keeps: the manifest's policy (restic's
//! rules), per service, and never the newest nor the last verified one.
//! Pure, so it is tested without a repository.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};

use crate::manifest::Keep;

/// A period a snapshot falls in: year and finer parts.
type Bucket = fn(&DateTime<Utc>) -> (i32, u32, u32, u32);

/// A snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Its id.
    pub id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
}

/// The ids to keep among one service's snapshots. `protected` ids are
/// kept whatever the policy says.
pub fn keep(policy: &Keep, snapshots: &[Stamp], protected: &BTreeSet<String>) -> BTreeSet<String> {
    let mut newest_first: Vec<&Stamp> = snapshots.iter().collect();
    newest_first.sort_by_key(|s| std::cmp::Reverse(s.time));
    let mut kept = BTreeSet::new();
    let Some(newest) = newest_first.first() else {
        return kept;
    };
    kept.insert(newest.id.clone());
    kept.extend(
        snapshots
            .iter()
            .filter(|s| protected.contains(&s.id))
            .map(|s| s.id.clone()),
    );
    let empty = policy.within.is_none()
        && policy.last.is_none()
        && policy.hourly.is_none()
        && policy.daily.is_none()
        && policy.weekly.is_none()
        && policy.monthly.is_none()
        && policy.yearly.is_none();
    if empty {
        // No policy is no permission to remove anything.
        kept.extend(snapshots.iter().map(|s| s.id.clone()));
        return kept;
    }
    if let Some(within) = policy
        .within
        .as_deref()
        .and_then(|w| crate::units::parse_duration(w).ok())
        .and_then(|d| chrono::Duration::from_std(d).ok())
    {
        // As restic: within the span before the newest snapshot, so a
        // machine that stopped backing up does not lose its last ones.
        let since = newest.time - within;
        kept.extend(
            newest_first
                .iter()
                .filter(|s| s.time >= since)
                .map(|s| s.id.clone()),
        );
    }
    if let Some(n) = policy.last {
        kept.extend(newest_first.iter().take(n as usize).map(|s| s.id.clone()));
    }
    let rules: [(Option<u32>, Bucket); 5] = [
        (policy.hourly, |t| (t.year(), t.ordinal(), t.hour(), 0)),
        (policy.daily, |t| (t.year(), t.ordinal(), 0, 0)),
        (policy.weekly, |t| {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }),
        (policy.monthly, |t| (t.year(), t.month(), 0, 0)),
        (policy.yearly, |t| (t.year(), 0, 0, 0)),
    ];
    for (count, bucket) in rules {
        let Some(count) = count else { continue };
        let mut last = None;
        let mut taken = 0;
        for s in &newest_first {
            if taken >= count {
                break;
            }
            let b = bucket(&s.time);
            if last != Some(b) {
                kept.insert(s.id.clone());
                last = Some(b);
                taken += 1;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T{hour:02}:00:00Z"))
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn stamps(times: &[(u32, u32)]) -> Vec<Stamp> {
        times
            .iter()
            .map(|&(d, h)| Stamp {
                id: format!("{d:02}-{h:02}"),
                time: at(d, h),
            })
            .collect()
    }

    #[test]
    fn daily_keeps_the_last_snapshot_of_each_day() {
        let s = stamps(&[(1, 1), (1, 23), (2, 5), (3, 2), (3, 4)]);
        let policy = Keep {
            daily: Some(2),
            ..Keep::default()
        };
        let kept = keep(&policy, &s, &BTreeSet::new());
        assert_eq!(
            kept,
            BTreeSet::from(["03-04".to_string(), "02-05".to_string()])
        );
    }

    #[test]
    fn within_counts_back_from_the_newest_snapshot() {
        let s = stamps(&[(1, 0), (9, 0), (10, 0)]);
        let policy = Keep {
            within: Some("2d".into()),
            ..Keep::default()
        };
        let kept = keep(&policy, &s, &BTreeSet::new());
        assert_eq!(
            kept,
            BTreeSet::from(["09-00".to_string(), "10-00".to_string()])
        );
    }

    #[test]
    fn the_last_verified_snapshot_is_never_removed() {
        let s = stamps(&[(1, 0), (2, 0), (3, 0)]);
        let policy = Keep {
            last: Some(1),
            ..Keep::default()
        };
        let kept = keep(&policy, &s, &BTreeSet::from(["01-00".to_string()]));
        assert_eq!(
            kept,
            BTreeSet::from(["01-00".to_string(), "03-00".to_string()])
        );
    }

    #[test]
    fn no_policy_removes_nothing() {
        let s = stamps(&[(1, 0), (2, 0)]);
        assert_eq!(keep(&Keep::default(), &s, &BTreeSet::new()).len(), 2);
    }
}

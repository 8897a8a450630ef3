//! Server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`):
//! `uniform` (balanced and sticky: members keep what they had up to their fair
//! share, so a join or leave moves as few partitions as possible) and `range`
//! (per topic, contiguous ranges over the subscribed members sorted by id).
//!
//! Pure functions over names: topic names with their partition counts in, a target
//! assignment per member out. The consumer group (`consumer.rs`) decides when to
//! run them; topic ids are the API layer's business.

use std::collections::{BTreeMap, BTreeSet};

/// topic name → partitions.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub topics: &'a BTreeSet<String>,
    /// The previous target assignment, for stickiness.
    pub previous: Option<&'a Assignment>,
}

pub fn is_known(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// Run the named assignor (unknown names run `uniform`; callers validate first).
pub fn assign(name: &str, members: &[AssignorMember], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    if name == RANGE { range(members, partitions) } else { uniform(members, partitions) }
}

fn empty_result(members: &[AssignorMember]) -> BTreeMap<String, Assignment> {
    members.iter().map(|m| (m.id.to_string(), Assignment::new())).collect()
}

/// Per topic: the subscribed members sorted by id share the partitions in
/// contiguous ranges, the first `n % m` members one more.
pub fn range(members: &[AssignorMember], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(members);
    for (topic, &count) in partitions {
        let mut subs: Vec<&str> = members.iter().filter(|m| m.topics.contains(topic)).map(|m| m.id).collect();
        subs.sort_unstable();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let (each, extra) = (count as usize / subs.len(), count as usize % subs.len());
        let mut next = 0i32;
        for (i, id) in subs.iter().enumerate() {
            let n = each + usize::from(i < extra);
            let set: BTreeSet<i32> = (next..next + n as i32).collect();
            next += n as i32;
            if !set.is_empty() {
                out.get_mut(*id).expect("every member has an entry").insert(topic.clone(), set);
            }
        }
    }
    out
}

/// Balanced and sticky. Every member first keeps up to `floor(P/M)` of its previous
/// partitions, then up to `P % M` members keep one more; the rest go one at a time to
/// the least-loaded subscribed member (ties by member id).
pub fn uniform(members: &[AssignorMember], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(members);
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.id, 0)).collect();
    let all: Vec<(String, i32)> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n.max(0)).map(move |p| (t.clone(), p)))
        .collect();
    if members.is_empty() || all.is_empty() {
        return out;
    }
    let floor = all.len() / members.len();
    let mut extra = all.len() % members.len();
    let mut taken: BTreeSet<(String, i32)> = BTreeSet::new();
    let valid = |m: &AssignorMember, t: &str, p: i32| m.topics.contains(t) && partitions.get(t).is_some_and(|&n| p < n);
    // Kept partitions per member, previous ones still valid, in order.
    let keepable: Vec<Vec<(String, i32)>> = members
        .iter()
        .map(|m| {
            m.previous
                .into_iter()
                .flat_map(|a| a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))))
                .filter(|(t, p)| valid(m, t, *p))
                .collect()
        })
        .collect();
    let give = |out: &mut BTreeMap<String, Assignment>, load: &mut BTreeMap<&str, usize>, id: &str, tp: &(String, i32)| {
        out.get_mut(id).expect("every member has an entry").entry(tp.0.clone()).or_default().insert(tp.1);
        *load.get_mut(id).expect("every member has a load") += 1;
    };
    for (m, keep) in members.iter().zip(&keepable) {
        for tp in keep.iter().take(floor) {
            if taken.insert(tp.clone()) {
                give(&mut out, &mut load, m.id, tp);
            }
        }
    }
    for (m, keep) in members.iter().zip(&keepable) {
        if extra == 0 {
            break;
        }
        if let Some(tp) = keep.iter().skip(floor).find(|tp| !taken.contains(*tp)) {
            taken.insert(tp.clone());
            give(&mut out, &mut load, m.id, tp);
            extra -= 1;
        }
    }
    for tp in &all {
        if taken.contains(tp) {
            continue;
        }
        let best = members.iter().filter(|m| m.topics.contains(&tp.0)).min_by_key(|m| (load[m.id], m.id)).map(|m| m.id);
        if let Some(id) = best {
            give(&mut out, &mut load, id, tp);
        }
    }
    out
}

//! Where a new partition's replicas go: Kafka's assignment over the live brokers (a
//! random broker leads partition 0, leaders then go round-robin, and followers sit at
//! a shift that grows every full round, so partitions led by one broker spread their
//! followers over the others), rack-aware when brokers have a `broker.rack` (the
//! brokers are interleaved by rack and a follower is skipped while its rack already
//! holds a replica and another rack holds none), and the checks on a manual
//! assignment. Pure functions; CreateTopics and CreatePartitions call them inside
//! their proposal, on the image they commit against.

use crate::metadata::PartitionImage;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka: INVALID_REPLICATION_FACTOR (38).
    #[error("{0}")]
    ReplicationFactor(String),
    /// Kafka: INVALID_REPLICA_ASSIGNMENT (39).
    #[error("{0}")]
    Assignment(String),
}

/// A live broker as placement sees it: its id and `broker.rack` (None: no rack, which
/// counts as a rack of its own, as in Kafka's KRaft placer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    pub id: i32,
    pub rack: Option<&'a str>,
}

/// Replicas for partitions `first_partition..first_partition + count`, `replication_factor`
/// each, over `live` (sorted by id). `seed` picks the start broker and the first
/// follower shift (callers pass something random; tests pass constants). When any
/// broker has a rack, replicas are spread over racks ([`assign_rack_aware`]).
pub fn place_replicas(live: &[Candidate], count: i32, replication_factor: i16, first_partition: i32, seed: u64) -> Result<Vec<Vec<i32>>, PlacementError> {
    if live.iter().any(|c| c.rack.is_some()) {
        assign_rack_aware(live, count, replication_factor, first_partition, seed)
    } else {
        assign(&live.iter().map(|c| c.id).collect::<Vec<_>>(), count, replication_factor, first_partition, seed)
    }
}

fn check_replication_factor(replication_factor: i16, brokers: usize) -> Result<usize, PlacementError> {
    if replication_factor < 1 {
        return Err(PlacementError::ReplicationFactor("Replication factor must be larger than 0, or -1 to use the default value.".into()));
    }
    let rf = replication_factor as usize;
    if rf > brokers {
        return Err(PlacementError::ReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {brokers} broker(s) are registered."
        )));
    }
    Ok(rf)
}

/// Kafka's round-robin over `n` brokers (by index), for partitions `first_partition..
/// first_partition + count`: the leader of partition p is broker (p + start) % n, and the
/// follower shift grows by one every full round; `followers(leader, shift)` gives the
/// rest of the replicas. `seed` picks the start broker and the first shift.
fn round_robin(n: usize, count: i32, first_partition: i32, seed: u64, mut followers: impl FnMut(usize, usize) -> Vec<usize>) -> Vec<Vec<usize>> {
    let start = (seed % n as u64) as usize;
    let mut shift = ((seed >> 32) % n as u64) as usize;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for p in first_partition.max(0)..first_partition.max(0) + count {
        let p = p as usize;
        if p > 0 && p.is_multiple_of(n) {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![first];
        replicas.extend(followers(first, shift));
        out.push(replicas);
    }
    out
}

/// The broker `k` steps into the walk over the others from `first` at `shift`: as k
/// runs over any n - 1 consecutive values, each broker but `first` comes up once.
fn follower_at(first: usize, shift: usize, k: usize, n: usize) -> usize {
    (first + 1 + (shift + k) % (n - 1)) % n
}

/// Rack-unaware placement over `live` (broker ids, sorted); see [`place_replicas`].
pub fn assign(live: &[i32], count: i32, replication_factor: i16, first_partition: i32, seed: u64) -> Result<Vec<Vec<i32>>, PlacementError> {
    let rf = check_replication_factor(replication_factor, live.len())?;
    let n = live.len();
    // Followers at distinct offsets 1..n-1 from the leader, so never a duplicate.
    let placed = round_robin(n, count, first_partition, seed, |first, shift| (0..rf - 1).map(|j| follower_at(first, shift, j, n)).collect());
    Ok(placed.into_iter().map(|r| r.into_iter().map(|i| live[i]).collect()).collect())
}

/// `live` interleaved by rack: the first broker (lowest id) of each rack, racks in
/// name order (no rack first), then the second of each, and so on. Consecutive
/// brokers of this list are in different racks wherever the racks allow it.
fn rack_alternated<'a>(live: &[Candidate<'a>]) -> Vec<Candidate<'a>> {
    let mut racks: std::collections::BTreeMap<Option<&str>, Vec<Candidate<'a>>> = std::collections::BTreeMap::new();
    for c in live {
        racks.entry(c.rack).or_default().push(*c);
    }
    for brokers in racks.values_mut() {
        brokers.sort_by_key(|c| c.id);
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest).flat_map(|i| racks.values().filter_map(move |b| b.get(i).copied())).collect()
}

/// Rack-aware placement: leaders and the follower shift go as in [`assign`], over the
/// rack-alternated broker list; a follower candidate is passed over while its rack
/// already holds a replica of the partition and some rack holds none, so a partition
/// spans min(replication factor, racks) racks. Brokers are never repeated.
pub fn assign_rack_aware(live: &[Candidate], count: i32, replication_factor: i16, first_partition: i32, seed: u64) -> Result<Vec<Vec<i32>>, PlacementError> {
    let rf = check_replication_factor(replication_factor, live.len())?;
    let arranged = rack_alternated(live);
    let n = arranged.len();
    let num_racks = arranged.iter().map(|c| c.rack).collect::<std::collections::BTreeSet<_>>().len();
    let placed = round_robin(n, count, first_partition, seed, |first, shift| {
        // Candidates walk the other brokers from the leader's shift on; within any n - 1
        // steps each other broker comes up once, and while fewer than rf are chosen one
        // of them is acceptable (an unchosen broker; in an unused rack while one exists).
        let mut chosen = vec![first];
        let mut k = 0;
        while chosen.len() < rf {
            let c = follower_at(first, shift * num_racks, k, n);
            k += 1;
            let racks_used: std::collections::BTreeSet<_> = chosen.iter().map(|&i| arranged[i].rack).collect();
            let rack_ok = !racks_used.contains(&arranged[c].rack) || racks_used.len() == num_racks;
            if rack_ok && !chosen.contains(&c) {
                chosen.push(c);
            }
            assert!(k <= rf * n, "rack-aware placement found no replica among {n} brokers");
        }
        chosen.split_off(1)
    });
    Ok(placed.into_iter().map(|r| r.into_iter().map(|i| arranged[i].id).collect()).collect())
}

/// Check a manual assignment: every list non-empty, no broker twice in a list, every
/// broker registered, and one replication factor throughout (`expected_rf` when the
/// topic already has partitions).
pub fn validate_manual(assignments: &[Vec<i32>], is_registered: impl Fn(i32) -> bool, expected_rf: Option<usize>) -> Result<(), PlacementError> {
    let bad = |m: String| Err(PlacementError::Assignment(m));
    let mut rf = expected_rf;
    for replicas in assignments {
        if replicas.is_empty() {
            return bad("The manual partition assignment includes an empty replica list.".into());
        }
        for (i, &b) in replicas.iter().enumerate() {
            if replicas[..i].contains(&b) {
                return bad(format!("The manual partition assignment includes the broker {b} more than once."));
            }
            if !is_registered(b) {
                return bad(format!("The manual partition assignment includes broker {b}, but no such broker is registered."));
            }
        }
        match rf {
            Some(r) if r != replicas.len() => {
                return bad(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {r} replica(s).",
                    replicas.len()
                ));
            }
            _ => rf = Some(replicas.len()),
        }
    }
    Ok(())
}

/// A new partition on `replicas`: the first live replica leads, the live ones form
/// the ISR (all of them, for a computed assignment). No live replica: offline.
pub fn new_partition(replicas: Vec<i32>, is_live: impl Fn(i32) -> bool) -> PartitionImage {
    let isr: Vec<i32> = replicas.iter().copied().filter(|&r| is_live(r)).collect();
    match isr.first() {
        Some(&leader) => PartitionImage { leader, leader_epoch: 0, replicas, isr, ..Default::default() },
        None => {
            let isr = replicas[..1.min(replicas.len())].to_vec();
            PartitionImage { leader: super::election::NO_LEADER, leader_epoch: 0, replicas, isr, ..Default::default() }
        }
    }
}

/// A seed for `assign` from the OS's randomness (uuid v4 draws it).
pub fn random_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_leaders_and_followers_over_live_brokers() {
        let live = [1, 2, 3];
        for seed in [0u64, 1, 2, 5 << 32, u64::MAX] {
            let a = assign(&live, 6, 3, 0, seed).unwrap();
            assert_eq!(a.len(), 6);
            for r in &a {
                let mut s = r.clone();
                s.sort();
                assert_eq!(s, vec![1, 2, 3], "each partition on three distinct brokers: {a:?}");
            }
            // Leaders round-robin: each broker leads two of six.
            for b in live {
                assert_eq!(a.iter().filter(|r| r[0] == b).count(), 2, "{a:?}");
            }
        }
        let a = assign(&[1, 2, 3, 4], 8, 2, 0, 0).unwrap();
        assert_eq!(a.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![1, 2, 3, 4, 1, 2, 3, 4]);
        // After a full round the follower shift grows: 1's followers differ between rounds.
        assert_ne!(a[0][1], a[4][1]);
        assert_eq!(assign(&[7], 3, 1, 0, 99).unwrap(), vec![vec![7]; 3]);
        // Partitions added later continue the round-robin from their index.
        assert_eq!(assign(&[1, 2, 3], 1, 1, 4, 0).unwrap(), vec![vec![2]]);
    }

    fn racked<'a>(brokers: &[(i32, Option<&'a str>)]) -> Vec<Candidate<'a>> {
        brokers.iter().map(|&(id, rack)| Candidate { id, rack }).collect()
    }

    #[test]
    fn brokers_are_interleaved_by_rack() {
        let live = racked(&[(1, Some("b")), (2, Some("a")), (3, Some("a")), (4, Some("b")), (5, Some("c")), (6, None)]);
        let ids: Vec<i32> = rack_alternated(&live).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![6, 2, 1, 5, 3, 4]);
    }

    #[test]
    fn rack_aware_placement_spans_racks() {
        let racks_of = |live: &[Candidate], r: &[i32]| -> std::collections::BTreeSet<Option<String>> {
            r.iter().map(|b| live.iter().find(|c| c.id == *b).unwrap().rack.map(str::to_string)).collect()
        };
        // Uneven racks: a has 3 brokers, b has 2, c has 1.
        let live = racked(&[(1, Some("a")), (2, Some("a")), (3, Some("a")), (4, Some("b")), (5, Some("b")), (6, Some("c"))]);
        for seed in [0u64, 1, 7, 3 << 32, u64::MAX] {
            for rf in 1..=6i16 {
                let a = assign_rack_aware(&live, 24, rf, 0, seed).unwrap();
                assert_eq!(a.len(), 24);
                for r in &a {
                    assert_eq!(r.len(), rf as usize);
                    let mut s = r.clone();
                    s.sort();
                    s.dedup();
                    assert_eq!(s.len(), rf as usize, "distinct brokers: {r:?}");
                    assert_eq!(racks_of(&live, r).len(), (rf as usize).min(3), "rf {rf} seed {seed}: {r:?} spans every rack it can");
                }
                // Leaders round-robin over all six brokers.
                for b in 1..=6 {
                    assert_eq!(a.iter().filter(|r| r[0] == b).count(), 4, "{a:?}");
                }
            }
        }
        // Two racks, RF 2: every partition has one replica in each rack.
        let live = racked(&[(1, Some("x")), (2, Some("x")), (3, Some("y")), (4, Some("y"))]);
        let a = place_replicas(&live, 8, 2, 0, 5).unwrap();
        assert!(a.iter().all(|r| racks_of(&live, r).len() == 2), "{a:?}");
        // No broker with a rack: the rack-unaware placement, unchanged.
        let bare = racked(&[(1, None), (2, None), (3, None)]);
        assert_eq!(place_replicas(&bare, 6, 2, 0, 9).unwrap(), assign(&[1, 2, 3], 6, 2, 0, 9).unwrap());
        assert!(matches!(assign_rack_aware(&live, 1, 5, 0, 0), Err(PlacementError::ReplicationFactor(_))));
    }

    #[test]
    fn replication_factor_errors_follow_kafka() {
        let e = assign(&[1, 2], 1, 3, 0, 0).unwrap_err();
        assert_eq!(
            e,
            PlacementError::ReplicationFactor(
                "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.".into()
            )
        );
        assert!(matches!(assign(&[1], 1, 0, 0, 0), Err(PlacementError::ReplicationFactor(_))));
        assert!(matches!(assign(&[], 1, 1, 0, 0), Err(PlacementError::ReplicationFactor(_))));
    }

    #[test]
    fn manual_assignments_are_checked() {
        let known = |b: i32| (1..=3).contains(&b);
        assert!(validate_manual(&[vec![1, 2], vec![2, 3]], known, None).is_ok());
        let err = |a: &[Vec<i32>], rf| match validate_manual(a, known, rf) {
            Err(PlacementError::Assignment(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(&[vec![1, 1]], None).contains("broker 1 more than once"));
        assert!(err(&[vec![1, 9]], None).contains("broker 9, but no such broker is registered"));
        assert!(err(&[vec![1, 2], vec![3]], None).contains("not consistent"));
        assert!(err(&[vec![]], None).contains("empty replica list"));
        assert!(err(&[vec![1]], Some(2)).contains("not consistent"));
    }

    #[test]
    fn new_partitions_are_led_by_the_first_live_replica() {
        let p = new_partition(vec![2, 1, 3], |b| b != 2);
        assert_eq!((p.leader, p.isr), (1, vec![1, 3]));
        let p = new_partition(vec![2, 1], |_| false);
        assert_eq!((p.leader, p.isr), (-1, vec![2]));
    }
}

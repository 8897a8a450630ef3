//! Where a new partition's replicas go: Kafka's rack-unaware assignment over the
//! live brokers (a random broker leads partition 0, leaders then go round-robin,
//! and followers sit at a shift that grows every full round, so partitions led
//! by one broker spread their followers over the others), and the checks on a
//! manual assignment. Pure functions; CreateTopics and CreatePartitions call them
//! inside their proposal, on the image they commit against.

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

/// Replicas for partitions `first_partition..first_partition + count`, `replication_factor`
/// each, over `live` (broker ids, sorted). `seed` picks the start broker and the
/// first follower shift (callers pass something random; tests pass constants).
pub fn assign(live: &[i32], count: i32, replication_factor: i16, first_partition: i32, seed: u64) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor < 1 {
        return Err(PlacementError::ReplicationFactor("Replication factor must be larger than 0, or -1 to use the default value.".into()));
    }
    let rf = replication_factor as usize;
    let n = live.len();
    if rf > n {
        return Err(PlacementError::ReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {n} broker(s) are registered."
        )));
    }
    let start = (seed % n as u64) as usize;
    let mut shift = ((seed >> 32) % n as u64) as usize;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for p in first_partition.max(0)..first_partition.max(0) + count {
        let p = p as usize;
        if p > 0 && p.is_multiple_of(n) {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![live[first]];
        // Followers at distinct offsets 1..n-1 from the leader, so never a duplicate.
        replicas.extend((0..rf - 1).map(|j| live[(first + 1 + (shift + j) % (n - 1)) % n]));
        out.push(replicas);
    }
    Ok(out)
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

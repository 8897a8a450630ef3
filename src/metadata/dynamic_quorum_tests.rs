//! A dynamic quorum (KIP-853) on loopback: a standalone controller, two more that
//! start as observers and are added one at a time, the refusals Kafka's
//! AddVoterHandler / RemoveVoterHandler give (duplicate, unknown, wrong directory
//! id, lagging or unreachable, a second change while one is under way), and the
//! leader removing itself: it steps down, the others elect, it goes on observing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::quorum_tests::{create, free_port, shutdown, wait_until};
use super::store::{MetadataStore, Quorum};
use crate::metadata::identity::uuid_to_text;
use crate::raft::Member;
use crate::raft::voters::{AddVoter, Dynamic, Initial, RemoveVoter, VoterChangeError};

fn dir_id(id: u64) -> String {
    uuid_to_text(Uuid::from_u128(0x5eed_0000 + id as u128))
}

fn open(dir: &Path, id: u64, addrs: &BTreeMap<u64, String>, initial: Initial) -> MetadataStore {
    let me = Member::new(addrs[&id].clone(), Some(dir_id(id)));
    let dynamic = Dynamic { bootstrap: addrs.values().cloned().collect(), me, controller: true, initial };
    let q = Quorum { node_id: id, voters: BTreeMap::new(), listen: addrs[&id].parse().ok(), observer_addr: None, dynamic: Some(dynamic) };
    MetadataStore::open_quorum(dir, q).unwrap()
}

fn ids(v: &[(u64, String, i64)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

#[test]
fn controllers_are_added_and_removed_one_at_a_time() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
    let add = |s: &MetadataStore, id: u64, dir: String| {
        rt.block_on(s.raft().add_voter(AddVoter { voter_id: id, directory_id: dir, addr: addrs.get(&id).cloned().unwrap_or_default(), timeout_ms: 10_000 }))
    };
    let remove = |s: &MetadataStore, id: u64, dir: String| rt.block_on(s.raft().remove_voter(RemoveVoter { voter_id: id, directory_id: dir }));

    let standalone = Initial::Voters(BTreeMap::from([(1, Member::new(addrs[&1].clone(), Some(dir_id(1))))]));
    let s1 = open(dirs[0].path(), 1, &addrs, standalone);
    wait_until("the standalone controller leads", || s1.raft().metrics().current_leader == Some(1));
    create(&s1, "t0");
    let s2 = open(dirs[1].path(), 2, &addrs, Initial::Observe);
    let mut s3 = open(dirs[2].path(), 3, &addrs, Initial::Observe);
    wait_until("observers receive the log", || s2.image().topic("t0").is_some() && s3.image().topic("t0").is_some());
    let view = s1.raft().quorum_view();
    assert_eq!((ids(&view.voters), ids(&view.observers)), (vec![1], vec![2, 3]));
    assert_eq!(view.directory_ids.get(&2), Some(&dir_id(2)), "observers report their directory id");

    // Asked of the observer itself: carried to the leader.
    assert_eq!(add(&s2, 2, dir_id(2)), Ok(()));
    assert!(matches!(add(&s1, 2, dir_id(2)), Err(VoterChangeError::DuplicateVoter(_))));
    let t0 = Instant::now();
    assert!(matches!(add(&s1, 9, dir_id(9)), Err(VoterChangeError::TimedOut(_))), "a node that never joined");
    assert!(matches!(add(&s1, 3, dir_id(7)), Err(VoterChangeError::TimedOut(_))), "another directory's node 3");
    assert!(t0.elapsed() < Duration::from_secs(2), "refused at once, not after a timeout");

    // Node 3 stopped and behind: refused as lagging within the catch-up wait, and a
    // second change while that one holds the change lock is refused at once.
    shutdown(s3);
    create(&s1, "t1");
    std::thread::scope(|scope| {
        let lagging = scope.spawn(|| {
            let t = Instant::now();
            (add(&s1, 3, dir_id(3)), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        let rt2 = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let second = rt2.block_on(s1.raft().remove_voter(RemoveVoter { voter_id: 2, directory_id: dir_id(2) }));
        assert!(matches!(&second, Err(VoterChangeError::TimedOut(m)) if m.contains("previous")), "{second:?}");
        let (first, took) = lagging.join().unwrap();
        assert!(matches!(&first, Err(VoterChangeError::TimedOut(m)) if m.contains("lagging")), "{first:?}");
        assert!(took < Duration::from_secs(8), "bounded: {took:?}");
    });

    // Back, caught up, added.
    s3 = open(dirs[2].path(), 3, &addrs, Initial::Observe);
    wait_until("node 3 catches up", || s3.image().topic("t1").is_some());
    assert_eq!(add(&s1, 3, dir_id(3)), Ok(()));
    for s in [&s1, &s2, &s3] {
        let v = rt.block_on(s.raft().leader_quorum_view());
        assert_eq!((ids(&v.voters), ids(&v.observers)), (vec![1, 2, 3], vec![]), "as seen from node {}", s.raft().id());
    }

    assert!(matches!(remove(&s1, 3, dir_id(8)), Err(VoterChangeError::VoterNotFound(_))), "wrong directory id");
    assert!(matches!(remove(&s1, 7, dir_id(7)), Err(VoterChangeError::VoterNotFound(_))), "not a voter");

    // The leader removes itself: it steps down, 2 and 3 elect, 1 observes on.
    assert_eq!(remove(&s2, 1, dir_id(1)), Ok(()));
    wait_until("a new leader among 2 and 3", || {
        [&s2, &s3].iter().all(|s| matches!(s.raft().metrics().current_leader, Some(2 | 3)))
            && s1.raft().metrics().state != openraft::ServerState::Leader
    });
    create(&s2, "after-remove");
    wait_until("the removed controller still follows the log", || s1.image().topic("after-remove").is_some());
    let v = rt.block_on(s3.raft().leader_quorum_view());
    assert_eq!((ids(&v.voters), ids(&v.observers)), (vec![2, 3], vec![1]));
    assert!(matches!(add(&s3, 1, dir_id(1)), Ok(())), "and can be added back");

    for s in [s1, s2, s3] {
        shutdown(s);
    }
}

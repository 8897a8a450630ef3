//! Three controllers on loopback over the real TCP transport: proposals through
//! the leader and through a follower, convergence, leader loss and re-election,
//! and a restarted node catching up (from a snapshot once the log is purged).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::store::{MetadataStore, Quorum};
use super::MetadataRecord;

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn open(dir: &Path, id: u64, voters: &BTreeMap<u64, String>) -> MetadataStore {
    let listen = voters[&id].parse().ok();
    MetadataStore::open_quorum(dir, Quorum { node_id: id, voters: voters.clone(), listen, observer_addr: None, dynamic: None }).unwrap()
}

pub(super) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn leader_of(stores: &[Option<MetadataStore>]) -> Option<u64> {
    let ids: Vec<Option<u64>> = stores.iter().flatten().map(|s| s.raft().metrics().current_leader).collect();
    let first = *ids.first()?;
    let alive: Vec<u64> = stores.iter().flatten().map(|s| s.raft().id()).collect();
    (ids.iter().all(|l| *l == first) && first.is_some_and(|l| alive.contains(&l))).then_some(first?)
}

pub(super) fn create(store: &MetadataStore, name: &str) {
    let id = Uuid::new_v4();
    store
        .propose(|img| {
            assert!(img.topic(name).is_none(), "{name} proposed twice");
            Ok(vec![
                MetadataRecord::Topic { name: name.into(), id },
                MetadataRecord::Partition { topic_id: id, partition: 0, leader: 1, leader_epoch: 0, replicas: vec![1], isr: vec![1], adding_replicas: vec![], removing_replicas: vec![] },
            ])
        })
        .unwrap();
    assert!(store.image().topic(name).is_some(), "propose returned before {name} was applied here");
}

fn at(id: u64) -> usize {
    (id - 1) as usize
}

pub(super) fn shutdown(store: MetadataStore) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.shutdown());
}

#[test]
fn three_controllers_elect_forward_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
    let mut stores: Vec<Option<MetadataStore>> = (1..=3u64).map(|id| Some(open(dirs[id as usize - 1].path(), id, &voters))).collect();
    wait_until("a leader", || leader_of(&stores).is_some());
    let leader = leader_of(&stores).unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    create(stores[at(leader)].as_ref().unwrap(), "via-leader");
    create(stores[at(follower)].as_ref().unwrap(), "via-follower");
    // DescribeQuorum at a follower: the leader's view (replication progress and all),
    // asked over the raft transport.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let own = stores[at(follower)].as_ref().unwrap().raft().quorum_view();
    assert!(!own.is_leader && own.high_watermark == -1, "{own:?}");
    let asked = rt.block_on(stores[at(follower)].as_ref().unwrap().raft().leader_quorum_view());
    assert!(asked.is_leader && asked.leader == Some(leader), "{asked:?}");
    assert_eq!(asked.voters.len(), 3);
    assert!(asked.high_watermark > 0 && asked.voters.iter().any(|(id, _, leo)| *id == leader && *leo >= asked.high_watermark), "{asked:?}");
    // A follower's build sees a stale image at worst; the leader makes it rebuild.
    let s = stores[at(follower)].as_ref().unwrap();
    let before = s.image().next_producer_id;
    let img = s.propose(|img| Ok(vec![MetadataRecord::ProducerIds { next_producer_id: img.next_producer_id + 1000 }])).unwrap();
    assert_eq!(img.next_producer_id, before + 1000);
    wait_until("all three images converge", || {
        stores.iter().flatten().all(|s| {
            let i = s.image();
            i.topic("via-leader").is_some() && i.topic("via-follower").is_some() && i.next_producer_id == before + 1000
        })
    });

    // Lose the leader: the other two elect a new one and keep committing.
    shutdown(stores[at(leader)].take().unwrap());
    wait_until("a new leader", || leader_of(&stores).is_some_and(|l| l != leader));
    let survivor = stores.iter().flatten().next().unwrap();
    create(survivor, "after-failover");
    for s in stores.iter().flatten() {
        wait_until("survivors converge", || s.image().topic("after-failover").is_some() && s.image().topic("via-leader").is_some());
    }

    // Snapshot and purge on the new leader, so the old node must catch up from the snapshot.
    let new_leader = leader_of(&stores).unwrap();
    stores[at(new_leader)].as_ref().unwrap().raft().snapshot_and_purge_for_tests();

    let old = open(dirs[leader as usize - 1].path(), leader, &voters);
    wait_until("the old leader catches up", || {
        let i = old.image();
        i.topic("after-failover").is_some() && i.topic("via-follower").is_some() && i.next_producer_id == before + 1000
    });
    assert!(old.raft().metrics().snapshot.is_some(), "caught up through an installed snapshot");
    stores[at(leader)] = Some(old);
    create(stores[at(leader)].as_ref().unwrap(), "after-rejoin");
    for s in stores.iter().flatten() {
        wait_until("all converge again", || s.image().topic("after-rejoin").is_some());
    }
    let offsets: Vec<i64> = stores.iter().flatten().map(|s| s.image().last_offset).collect();
    assert!(offsets.iter().all(|o| *o == offsets[0]), "{offsets:?}");
    for s in stores.into_iter().flatten() {
        shutdown(s);
    }
}

/// Brokers 1-3 register on three controllers running the controller loop; broker
/// `quiet` (a follower) stops heartbeating, is fenced within the session timeout and
/// its leadership moves; when it heartbeats again it is unfenced.
#[test]
fn silent_broker_is_fenced_and_its_partitions_re_led() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use crate::config::Config;
    use crate::controller::{self, Registration};

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _enter = rt.enter();
    let config = Arc::new(Config { broker_session_timeout_ms: 1_500, ..Default::default() });
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
    let stores: Vec<Arc<MetadataStore>> = (1..=3u64).map(|id| Arc::new(open(dirs[at(id)].path(), id, &voters))).collect();
    for s in &stores {
        controller::start(s, config.clone());
    }
    wait_until("a leader", || {
        let l: Vec<Option<u64>> = stores.iter().map(|s| s.raft().metrics().current_leader).collect();
        l[0].is_some() && l.iter().all(|x| *x == l[0])
    });
    let regs: Vec<Registration> = (1..=3).map(|id| Registration { id, incarnation: Uuid::new_v4(), host: "127.0.0.1".into(), port: 9000 + id, rack: None }).collect();
    for (i, r) in regs.iter().enumerate() {
        stores[i].propose(|img| Ok(controller::registration_records(img, r, false, "cid", &config))).unwrap();
    }
    // Each broker heartbeats through its own node every 200 ms while it is in `beating`.
    let beating = Arc::new(Mutex::new(HashSet::from([1, 2, 3])));
    for (i, r) in regs.iter().enumerate() {
        let (store, r, beating) = (Arc::downgrade(&stores[i]), r.clone(), beating.clone());
        rt.spawn(async move {
            loop {
                let Some(s) = store.upgrade() else { return };
                if beating.lock().unwrap().contains(&r.id) {
                    let _ = s.raft().heartbeat(r.id, r.incarnation).await;
                }
                drop(s);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let all_live = |s: &MetadataStore| s.image().live_brokers().len() == 3;
    wait_until("all three brokers unfenced everywhere", || stores.iter().all(|s| all_live(s)));
    assert_eq!(stores[0].image().cluster_id.as_deref(), Some("cid"));

    let topic = Uuid::new_v4();
    stores[0]
        .propose(|_| {
            let mut r = vec![MetadataRecord::Topic { name: "t".into(), id: topic }];
            for (p, replicas) in [vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]].into_iter().enumerate() {
                r.push(MetadataRecord::Partition { topic_id: topic, partition: p as i32, leader: replicas[0], leader_epoch: 0, isr: replicas.clone(), replicas, adding_replicas: vec![], removing_replicas: vec![] });
            }
            Ok(r)
        })
        .unwrap();

    let raft_leader = stores[0].raft().metrics().current_leader.unwrap() as i32;
    let quiet = (1..=3).find(|id| *id != raft_leader).unwrap();
    beating.lock().unwrap().remove(&quiet);
    let fenced_everywhere = || {
        stores.iter().all(|s| {
            let img = s.image();
            let t = img.topic("t").unwrap();
            !img.is_live(quiet) && t.partitions.iter().all(|p| p.leader != quiet && !p.isr.contains(&quiet) && p.leader != -1)
        })
    };
    wait_until("the quiet broker fenced and its partition re-led", fenced_everywhere);
    let img = stores[0].image();
    let led = &img.topic("t").unwrap().partitions[(quiet - 1) as usize];
    assert_eq!(led.leader_epoch, 1, "one leader change for the partition it led: {led:?}");
    assert!(img.topic("t").unwrap().partitions.iter().enumerate().all(|(i, p)| i == (quiet - 1) as usize || p.leader_epoch == 0));

    beating.lock().unwrap().insert(quiet);
    wait_until("the quiet broker unfenced after heartbeating again", || stores.iter().all(|s| all_live(s)));
    drop(_enter);
    for s in &stores {
        rt.block_on(s.shutdown());
    }
}

/// A broker-only node observes a one-voter quorum as a raft learner: it joins,
/// receives the log (before and after it joined), proposes through the leader,
/// heartbeats it, and rejoins under a new address after a restart. A node id that
/// belongs to a voter is refused.
#[test]
fn observer_joins_receives_the_log_and_proposes_through_the_leader() {
    let voter_dir = tempfile::tempdir().unwrap();
    let voters: BTreeMap<u64, String> = BTreeMap::from([(1, format!("127.0.0.1:{}", free_port()))]);
    let voter = open(voter_dir.path(), 1, &voters);
    wait_until("the voter leads", || voter.raft().metrics().current_leader == Some(1));
    create(&voter, "before-join");

    let open_observer = |dir: &Path, id: u64| {
        let addr = format!("127.0.0.1:{}", free_port());
        let q = Quorum { node_id: id, voters: voters.clone(), listen: addr.parse().ok(), observer_addr: Some(addr), dynamic: None };
        MetadataStore::open_quorum(dir, q).unwrap()
    };
    let obs_dir = tempfile::tempdir().unwrap();
    let observer = open_observer(obs_dir.path(), 5);
    wait_until("the observer receives the log", || observer.image().topic("before-join").is_some());
    let view = voter.raft().quorum_view();
    assert_eq!(view.voters.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1], "an observer never votes");
    assert_eq!(view.observers.iter().map(|o| o.0).collect::<Vec<_>>(), vec![5]);

    create(&observer, "via-observer");
    assert!(voter.image().topic("via-observer").is_some(), "forwarded to the leader and committed");
    create(&voter, "after-join");
    wait_until("the observer follows new entries", || observer.image().topic("after-join").is_some());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let incarnation = Uuid::new_v4();
    let reg = crate::controller::Registration { id: 5, incarnation, host: "127.0.0.1".into(), port: 9005, rack: None };
    let config = crate::config::Config::default();
    observer.propose(|img| Ok(crate::controller::registration_records(img, &reg, false, "cid", &config))).unwrap();
    let ack = rt.block_on(observer.raft().heartbeat(5, incarnation)).unwrap();
    assert_eq!(ack, crate::raft::network::HeartbeatAck::Ok, "the observer's heartbeat reaches the leader");

    // Restarted on another port: the leader learns the new address and streams on.
    shutdown(observer);
    let observer = open_observer(obs_dir.path(), 5);
    create(&voter, "after-restart");
    wait_until("the restarted observer catches up", || observer.image().topic("after-restart").is_some());
    let addr = voter.raft().quorum_view().observers[0].1.clone();
    wait_until("the leader has the new address", || voter.raft().quorum_view().observers[0].1 != addr || observer.raft().listen_addr.map(|a| a.to_string()) == Some(addr.clone()));

    // A voter's id cannot observe.
    let clash_dir = tempfile::tempdir().unwrap();
    let clash = open_observer(clash_dir.path(), 1);
    std::thread::sleep(Duration::from_millis(800));
    assert!(clash.image().topic("before-join").is_none(), "a voter's id is refused as an observer");
    assert_eq!(voter.raft().quorum_view().observers.len(), 1);
    shutdown(clash);
    shutdown(observer);
    shutdown(voter);
}

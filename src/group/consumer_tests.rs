//! KIP-848 consumer-group tests with explicit instants: joins, assignment over six
//! partitions, revocation before reassignment, leave, session expiry, fencing, static
//! members, the assignors, and the classic/consumer boundary in the coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::assignor::{self, Assignment, AssignorMember};
use super::consumer::{ConsumerGroup, Heartbeat, HeartbeatAnswer, Settings};
use super::reconcile::MemberState;
use super::*;

fn six(t: &str) -> Option<i32> {
    (t == "t").then_some(6)
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout: Some(Duration::from_secs(30)),
        topics: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
    Heartbeat { member_id: id.into(), member_epoch: epoch, owned: owned.cloned(), ..Default::default() }
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get("t").cloned().unwrap_or_default()
}

/// A client: heartbeats, and owns whatever the last answer assigned.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn join(g: &mut ConsumerGroup, id: &str, t: Instant) -> Client {
        let a = g.heartbeat(join(id), &six, t).unwrap();
        let mut c = Client { id: id.into(), epoch: 0, owned: Assignment::new() };
        c.take(a);
        c
    }

    fn take(&mut self, a: HeartbeatAnswer) {
        self.epoch = a.member_epoch;
        if let Some(x) = a.assignment {
            self.owned = x; // revokes at once, then reports it next time
        }
    }

    fn beat(&mut self, g: &mut ConsumerGroup, t: Instant) -> HeartbeatAnswer {
        let a = g.heartbeat(beat(&self.id, self.epoch, Some(&self.owned)), &six, t).unwrap();
        self.take(a.clone());
        a
    }
}

/// No partition is owned by two members, by the group's own books.
fn assert_exclusive(g: &ConsumerGroup) {
    let mut seen = BTreeSet::new();
    for m in g.members.values() {
        for p in parts(&m.progress.assigned).into_iter().chain(parts(&m.progress.revoking)) {
            assert!(seen.insert(p), "partition {p} held twice: {:?}", g.members);
        }
    }
}

fn group() -> ConsumerGroup {
    ConsumerGroup::new(Settings::default())
}

#[test]
fn first_member_gets_every_partition_at_the_group_epoch() {
    let t = Instant::now();
    let mut g = group();
    let a = Client::join(&mut g, "a", t);
    assert_eq!((g.group_epoch, g.assignment_epoch, a.epoch), (1, 1, 1));
    assert_eq!(parts(&a.owned), (0..6).collect());
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn second_member_waits_until_the_first_revoked() {
    let t = Instant::now();
    let mut g = group();
    let mut a = Client::join(&mut g, "a", t);
    let mut b = Client::join(&mut g, "b", t);
    // b is at the new epoch but everything in its target is still a's.
    assert_eq!(g.group_epoch, 2);
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty());
    assert_eq!(g.member_state("b"), MemberState::UnreleasedPartitions);
    // a is told to give up three partitions; it keeps its epoch until it has.
    let r = g.heartbeat(beat("a", 1, None), &six, t).unwrap();
    assert_eq!(r.member_epoch, 1);
    a.take(r);
    assert_eq!(parts(&a.owned).len(), 3);
    assert_eq!(g.member_state("a"), MemberState::UnrevokedPartitions);
    assert_exclusive(&g);
    // b still gets nothing: a has not confirmed the revocation.
    assert!(b.beat(&mut g, t).assignment.is_none());
    assert!(b.owned.is_empty());
    // a confirms (its heartbeat lists only what it kept): epoch 2, Stable.
    a.beat(&mut g, t);
    assert_eq!((a.epoch, g.member_state("a")), (2, MemberState::Stable));
    // Now b receives the released partitions.
    b.beat(&mut g, t);
    assert_eq!(parts(&b.owned).len(), 3);
    assert!(parts(&a.owned).is_disjoint(&parts(&b.owned)));
    assert_eq!(g.state_name(), "Stable");
    assert_exclusive(&g);
}

/// Heartbeat everyone until nothing changes; check exclusivity after every step.
fn settle(g: &mut ConsumerGroup, cs: &mut [Client], t: Instant) {
    for _ in 0..10 {
        for c in cs.iter_mut() {
            c.beat(g, t);
            assert_exclusive(g);
        }
    }
}

fn cs_owned(cs: &[Client]) -> Vec<BTreeSet<i32>> {
    cs.iter().map(|c| parts(&c.owned)).collect()
}

#[test]
fn three_members_share_six_partitions_two_each() {
    let t = Instant::now();
    let mut g = group();
    let mut cs = vec![Client::join(&mut g, "a", t)];
    cs.push(Client::join(&mut g, "b", t));
    settle(&mut g, &mut cs, t);
    cs.push(Client::join(&mut g, "c", t));
    settle(&mut g, &mut cs, t);
    let owned = cs_owned(&cs);
    assert!(owned.iter().all(|o| o.len() == 2), "{owned:?}");
    let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    assert_eq!(all, (0..6).collect());
    assert!(cs.iter().all(|c| c.epoch == g.group_epoch));
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn a_leaving_member_frees_its_partitions_at_once() {
    let t = Instant::now();
    let mut g = group();
    let mut cs = vec![Client::join(&mut g, "a", t), Client::join(&mut g, "b", t), Client::join(&mut g, "c", t)];
    settle(&mut g, &mut cs, t);
    let epoch = g.group_epoch;
    let r = g.heartbeat(beat("b", -1, None), &six, t).unwrap();
    assert_eq!(r.member_epoch, -1);
    assert_eq!(g.group_epoch, epoch + 1);
    assert!(!g.members.contains_key("b"));
    cs.remove(1);
    settle(&mut g, &mut cs, t);
    let owned = cs_owned(&cs);
    assert_eq!(owned.iter().map(|o| o.len()).collect::<Vec<_>>(), vec![3, 3]);
    // A second leave of the same member is unknown.
    assert_eq!(g.heartbeat(beat("b", -1, None), &six, t).unwrap_err(), Error::UnknownMemberId);
}

#[test]
fn session_expiry_removes_the_member_and_reassigns() {
    let t = Instant::now();
    let mut g = group();
    let mut cs = vec![Client::join(&mut g, "a", t), Client::join(&mut g, "b", t)];
    settle(&mut g, &mut cs, t);
    // a keeps heartbeating; b goes silent.
    let later = t + Duration::from_secs(30);
    cs[0].beat(&mut g, later);
    assert!(g.tick(t + Duration::from_secs(44)).is_empty());
    assert_eq!(g.tick(t + Duration::from_secs(45)), vec!["b".to_string()]);
    cs[0].beat(&mut g, t + Duration::from_secs(46));
    assert_eq!(parts(&cs[0].owned), (0..6).collect());
    assert_eq!(g.heartbeat(beat("b", cs[1].epoch, None), &six, later).unwrap_err(), Error::UnknownMemberId);
}

#[test]
fn a_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() {
    let t = Instant::now();
    let mut g = group();
    let mut a = Client::join(&mut g, "a", t);
    let _b = Client::join(&mut g, "b", t);
    // a learns it must revoke but never confirms (it keeps heartbeating without owned).
    g.heartbeat(beat("a", a.epoch, None), &six, t).unwrap();
    for s in [10, 20, 29] {
        g.heartbeat(beat("a", a.epoch, None), &six, t + Duration::from_secs(s)).unwrap();
    }
    assert_eq!(g.tick(t + Duration::from_secs(30)), vec!["a".to_string()]);
    a.epoch = 1;
    assert_eq!(g.heartbeat(beat("a", 1, None), &six, t).unwrap_err(), Error::UnknownMemberId);
}

#[test]
fn epochs_are_fenced_as_kafka_does() {
    let t = Instant::now();
    let mut g = group();
    let mut a = Client::join(&mut g, "a", t);
    // From the future: fenced.
    assert_eq!(g.heartbeat(beat("a", 5, None), &six, t).unwrap_err(), Error::FencedMemberEpoch);
    // Unknown member.
    assert_eq!(g.heartbeat(beat("zz", 1, None), &six, t).unwrap_err(), Error::UnknownMemberId);
    // Move a to epoch 2 (b joins; nothing to revoke for a? it must revoke 3).
    let mut b = Client::join(&mut g, "b", t);
    a.beat(&mut g, t);
    a.beat(&mut g, t);
    b.beat(&mut g, t);
    assert_eq!(a.epoch, 2);
    // The previous epoch is accepted when what it owns is a subset (a lost answer)...
    let kept = a.owned.clone();
    assert!(g.heartbeat(beat("a", 1, Some(&kept)), &six, t).is_ok());
    // ...but not without owned partitions, nor an older epoch.
    assert_eq!(g.heartbeat(beat("a", 1, None), &six, t).unwrap_err(), Error::FencedMemberEpoch);
    // Commits: only with the current epoch; simple commits with no member pass.
    assert_eq!(g.check_member_epoch("b", b.epoch - 1), Err(Error::StaleMemberEpoch));
    assert_eq!(g.check_member_epoch("b", b.epoch), Ok(()));
    assert_eq!(g.check_member_epoch("nobody", 3), Err(Error::UnknownMemberId));
    assert_eq!(g.check_member_epoch("", -1), Ok(()));
}

#[test]
fn static_members_hold_their_instance_id_until_they_leave() {
    let t = Instant::now();
    let mut g = group();
    let s1 = g.heartbeat(Heartbeat { instance_id: Some("i1".into()), ..join("m1") }, &six, t).unwrap();
    assert_eq!(s1.member_epoch, 1);
    let clash = g.heartbeat(Heartbeat { instance_id: Some("i1".into()), ..join("m2") }, &six, t);
    assert_eq!(clash.unwrap_err(), Error::UnreleasedInstanceId);
    // Temporary leave (-2): the assignment waits; a new incarnation takes it over.
    let left = g.heartbeat(Heartbeat { instance_id: Some("i1".into()), ..beat("m1", -2, None) }, &six, t).unwrap();
    assert_eq!(left.member_epoch, -2);
    let back = g.heartbeat(Heartbeat { instance_id: Some("i1".into()), ..join("m2") }, &six, t).unwrap();
    assert_eq!(parts(back.assignment.as_ref().unwrap()), (0..6).collect());
    assert!(!g.members.contains_key("m1"));
}

#[test]
fn unknown_assignor_and_missing_subscription_are_refused() {
    let t = Instant::now();
    let mut g = group();
    let bad = Heartbeat { server_assignor: Some("sticky".into()), ..join("a") };
    assert_eq!(g.heartbeat(bad, &six, t).unwrap_err(), Error::UnsupportedAssignor);
    let none = Heartbeat { topics: None, ..join("a") };
    assert_eq!(g.heartbeat(none, &six, t).unwrap_err(), Error::InvalidRequest);
    let range = Heartbeat { server_assignor: Some("range".into()), ..join("a") };
    g.heartbeat(range, &six, t).unwrap();
    assert_eq!(g.assignor, "range");
}

fn subs(ids: &[&str]) -> Vec<(String, BTreeSet<String>)> {
    ids.iter().map(|i| (i.to_string(), ["t".to_string()].into())).collect()
}

#[test]
fn range_gives_contiguous_ranges_in_member_order() {
    let s = subs(&["b", "a", "c", "d"]);
    let members: Vec<AssignorMember> = s.iter().map(|(id, t)| AssignorMember { id, topics: t, previous: None }).collect();
    let out = assignor::range(&members, &BTreeMap::from([("t".to_string(), 6)]));
    let got: Vec<BTreeSet<i32>> = ["a", "b", "c", "d"].iter().map(|m| parts(&out[*m])).collect();
    assert_eq!(got, vec![[0, 1].into(), [2, 3].into(), [4].into(), [5].into()]);
}

#[test]
fn uniform_is_balanced_and_sticky() {
    let counts = BTreeMap::from([("t".to_string(), 7)]);
    let s = subs(&["a", "b"]);
    let prev: BTreeMap<&str, Assignment> =
        BTreeMap::from([("a", Assignment::from([("t".to_string(), [0, 1, 2, 3].into())])), ("b", Assignment::from([("t".to_string(), [4, 5, 6].into())]))]);
    let mut members: Vec<AssignorMember> = s.iter().map(|(id, t)| AssignorMember { id, topics: t, previous: prev.get(id.as_str()) }).collect();
    let c = subs(&["c"]);
    members.push(AssignorMember { id: &c[0].0, topics: &c[0].1, previous: None });
    let out = assignor::uniform(&members, &counts);
    let sizes: Vec<usize> = ["a", "b", "c"].iter().map(|m| parts(&out[*m]).len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    assert!(sizes.iter().all(|n| (2..=3).contains(n)), "{sizes:?}");
    // Stickiness: a and b keep only partitions they had.
    assert!(parts(&out["a"]).is_subset(&[0, 1, 2, 3].into()));
    assert!(parts(&out["b"]).is_subset(&[4, 5, 6].into()));
}

#[tokio::test]
async fn classic_and_consumer_groups_do_not_mix() {
    let gc = GroupCoordinator::open(None, Limits::default(), 4096).unwrap();
    let all = vec!["t".to_string()];
    let view = || consumer_io::TopicView { partitions_of: &six, all_topics: &all };
    // A consumer group with a member refuses classic joins.
    gc.consumer_heartbeat("kip848", join("a"), view()).unwrap();
    let classic = JoinRequest {
        member_id: String::new(),
        profile: MemberProfile {
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::from_static(b"x"))],
        },
        require_known_member_id: true,
        supports_skip_assignment: false,
    };
    match gc.join("kip848", classic.clone()) {
        Reply::Now(r) => assert_eq!(r.error, Some(Error::InconsistentGroupProtocol)),
        Reply::Wait(_) => panic!("refused at once"),
    }
    assert!(gc.describe_consumer_group("kip848").is_ok());
    // A classic group with members is not a consumer group.
    let id = match gc.join("classic", classic.clone()) {
        Reply::Now(r) => r.member_id,
        Reply::Wait(_) => panic!("MEMBER_ID_REQUIRED first"),
    };
    let _wait = gc.join("classic", JoinRequest { member_id: id, ..classic });
    assert_eq!(gc.consumer_heartbeat("classic", join("b"), view()).unwrap_err(), Error::GroupIdNotFound);
    assert_eq!(gc.describe_consumer_group("classic").err(), Some(Error::GroupIdNotFound));
    assert_eq!(gc.describe_consumer_group("nope").err(), Some(Error::GroupIdNotFound));
    // Commits from a consumer-group member are checked by member epoch.
    let c = |epoch| gc.commit_offsets("kip848", MemberRef { member_id: "a", instance_id: None, generation: epoch }, vec![(("t".into(), 0), Committed { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 })]).map(|_| ());
    assert_eq!(c(0), Err(Error::StaleMemberEpoch));
    assert!(c(1).is_ok());
    // ListGroups tells the two kinds apart.
    let l: Vec<(String, &str, &str)> = gc.list().into_iter().map(|l| (l.group_id, l.group_type, l.state_name)).collect();
    assert!(l.contains(&("kip848".to_string(), "consumer", "Stable")), "{l:?}");
    assert!(l.iter().any(|(id, ty, _)| id == "classic" && *ty == "classic"), "{l:?}");
    // A non-empty consumer group cannot be deleted.
    assert_eq!(gc.delete_group("kip848"), Err(Error::NonEmptyGroup));
}

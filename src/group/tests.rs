//! State-machine tests with explicit instants (the clock seam: no waiting), plus the
//! coordinator log round trip and the ticker.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::membership::{JoinRequest, MemberRef};
use super::state::{Group, GroupState, JoinResult, Limits, Reply, SyncResult};
use super::*;

fn limits(delay_ms: u64) -> Limits {
    Limits { initial_rebalance_delay: Duration::from_millis(delay_ms), ..Limits::default() }
}

fn req(member_id: &str, instance: Option<&str>, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        profile: MemberProfile {
            instance_id: instance.map(Into::into),
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|(n, m)| (n.to_string(), Bytes::from(m.to_string()))).collect(),
        },
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn now_result<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(v) => v,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting<T>(r: Reply<T>) -> tokio::sync::oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

fn answered<T>(rx: &mut tokio::sync::oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answered by now")
}

/// MEMBER_ID_REQUIRED, then the real join; returns the waiting join.
fn join_new(g: &mut Group, t: Instant, protos: &[(&str, &str)]) -> (String, tokio::sync::oneshot::Receiver<JoinResult>) {
    let first = now_result(g.join(req("", None, protos), t));
    assert_eq!(first.error, Some(Error::MemberIdRequired));
    assert!(!first.member_id.is_empty());
    let id = first.member_id.clone();
    (id.clone(), waiting(g.join(req(&id, None, protos), t)))
}

fn who(id: &str, generation: i32) -> MemberRef<'_> {
    MemberRef { member_id: id, instance_id: None, generation }
}

fn sync_now(g: &mut Group, id: &str, gen_id: i32, a: Vec<(String, Bytes)>, t: Instant) -> Reply<SyncResult> {
    let r = g.sync(who(id, gen_id), (None, None), a, t);
    stored(g, r, t)
}

/// What the coordinator does when the write an answer waits for is replicated.
fn stored<T>(g: &mut Group, r: Reply<T>, t: Instant) -> Reply<T> {
    if let Some(h) = g.take_held_write() {
        g.write_done(h, Ok(()), t);
    }
    r
}

/// One member, joined and synced: Stable at generation 1.
fn stable_one(t: Instant) -> (Group, String) {
    let mut g = Group::new("g", limits(0));
    let (m1, mut j1) = join_new(&mut g, t, &[("range", "m1")]);
    let r = answered(&mut j1);
    assert_eq!((r.generation, r.leader.as_str(), r.members.len()), (1, m1.as_str(), 1));
    let s = now_result(sync_now(&mut g, &m1, 1, vec![(m1.clone(), Bytes::from_static(b"a1"))], t).map_now());
    assert_eq!(s.assignment, Bytes::from_static(b"a1"));
    assert_eq!(g.state, GroupState::Stable);
    (g, m1)
}

impl<T> Reply<T> {
    /// A leader's SyncGroup is answered at once through its own waiter.
    fn map_now(self) -> Reply<T> {
        match self {
            Reply::Wait(mut rx) => Reply::Now(rx.try_recv().expect("leader answered")),
            r => r,
        }
    }
}

#[test]
fn second_member_joins_and_both_get_their_assignment() {
    let t = Instant::now();
    let (mut g, m1) = stable_one(t);
    let (m2, mut j2) = join_new(&mut g, t, &[("range", "m2")]);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(j2.try_recv().is_err(), "must wait for m1 to rejoin");
    assert_eq!(g.heartbeat(who(&m1, 1), t), Err(Error::RebalanceInProgress));
    let mut j1 = waiting(g.join(req(&m1, None, &[("range", "m1")]), t));
    let (r1, r2) = (answered(&mut j1), answered(&mut j2));
    assert_eq!((r1.error, r2.error), (None, None));
    assert_eq!((r1.generation, r2.generation), (2, 2));
    assert_eq!(r1.leader, m1);
    assert_eq!(r2.leader, m1);
    let metas: Vec<_> = r1.members.iter().map(|m| (m.member_id.clone(), m.metadata.clone())).collect();
    assert_eq!(metas, vec![(m1.clone(), Bytes::from("m1")), (m2.clone(), Bytes::from("m2"))]);
    assert!(r2.members.is_empty());
    assert_eq!(r1.protocol_name.as_deref(), Some("range"));
    // Follower syncs first and waits for the leader.
    let mut s2 = waiting(sync_now(&mut g, &m2, 2, vec![], t));
    let a = vec![(m1.clone(), Bytes::from_static(b"x1")), (m2.clone(), Bytes::from_static(b"\x00\x01x2"))];
    let s1 = now_result(sync_now(&mut g, &m1, 2, a, t).map_now());
    assert_eq!(s1.assignment, Bytes::from_static(b"x1"));
    assert_eq!(answered(&mut s2).assignment, Bytes::from_static(b"\x00\x01x2"));
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.heartbeat(who(&m2, 2), t), Ok(()));
    assert_eq!(g.heartbeat(who(&m2, 1), t), Err(Error::IllegalGeneration));
    assert_eq!(g.heartbeat(who("nobody", 2), t), Err(Error::UnknownMemberId));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let t = Instant::now();
    let (mut g, m1) = stable_one(t);
    let (_m2, mut j2) = join_new(&mut g, t, &[("range", "m2")]);
    // m1 keeps heartbeating but never rejoins.
    let t2 = t + Duration::from_secs(29);
    assert_eq!(g.heartbeat(who(&m1, 1), t2), Err(Error::RebalanceInProgress));
    g.tick(t2);
    assert!(j2.try_recv().is_err());
    g.tick(t + Duration::from_secs(30));
    let r2 = answered(&mut j2);
    assert_eq!((r2.generation, r2.members.len()), (2, 1), "m2 leads alone");
    assert_eq!(r2.leader, r2.member_id);
    assert_eq!(g.heartbeat(who(&m1, 2), t2), Err(Error::UnknownMemberId));
}

#[test]
fn session_expiry_empties_the_group() {
    let t = Instant::now();
    let (mut g, m1) = stable_one(t);
    g.tick(t + Duration::from_secs(9));
    assert_eq!(g.heartbeat(who(&m1, 1), t + Duration::from_secs(9)), Ok(()));
    g.tick(t + Duration::from_secs(18));
    assert_eq!(g.state, GroupState::Stable);
    g.tick(t + Duration::from_secs(19));
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation, 2);
    assert_eq!(g.member_count(), 0);
}

#[test]
fn pending_member_ids_lapse_and_do_not_block_forever() {
    let t = Instant::now();
    let (mut g, _m1) = stable_one(t);
    let first = now_result(g.join(req("", None, &[("range", "x")]), t));
    assert_eq!(first.error, Some(Error::MemberIdRequired));
    assert_eq!(g.state, GroupState::Stable, "an issued id alone does not rebalance");
    g.tick(t + Duration::from_secs(11));
    let late = now_result(g.join(req(&first.member_id, None, &[("range", "x")]), t + Duration::from_secs(11)));
    assert_eq!(late.error, Some(Error::UnknownMemberId));
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let t = Instant::now();
    let mut g = Group::new("g", limits(0));
    let mut j = waiting(g.join(req("", Some("i1"), &[("range", "m")]), t));
    let r = answered(&mut j);
    assert_eq!(r.error, None, "static members skip MEMBER_ID_REQUIRED");
    let old = r.member_id.clone();
    now_result(sync_now(&mut g, &old, 1, vec![(old.clone(), Bytes::from_static(b"A"))], t).map_now());
    // Restart: no member id, same instance id and metadata.
    let rejoin = g.join(req("", Some("i1"), &[("range", "m")]), t + Duration::from_secs(5));
    let r = now_result(stored(&mut g, rejoin, t).map_now());
    assert_eq!((r.error, r.generation), (None, 1));
    assert_ne!(r.member_id, old);
    assert_eq!(g.state, GroupState::Stable);
    let s = now_result(g.sync(MemberRef { member_id: &r.member_id, instance_id: Some("i1"), generation: 1 }, (None, None), vec![], t));
    assert_eq!(s.assignment, Bytes::from_static(b"A"));
    let fenced = g.heartbeat(MemberRef { member_id: &old, instance_id: Some("i1"), generation: 1 }, t);
    assert_eq!(fenced, Err(Error::FencedInstanceId));
}

#[test]
fn initial_delay_waits_for_more_members() {
    let t = Instant::now();
    let mut g = Group::new("g", limits(3000));
    let (_m1, mut j1) = join_new(&mut g, t, &[("range", "1")]);
    g.tick(t + Duration::from_secs(1));
    assert!(j1.try_recv().is_err());
    let (_m2, mut j2) = join_new(&mut g, t + Duration::from_secs(2), &[("range", "2")]);
    g.tick(t + Duration::from_secs(4));
    assert!(j1.try_recv().is_err(), "a new member extends the delay");
    g.tick(t + Duration::from_secs(5));
    let (r1, r2) = (answered(&mut j1), answered(&mut j2));
    assert_eq!((r1.generation, r2.generation), (1, 1));
    assert_eq!(r1.members.len() + r2.members.len(), 2);
}

#[test]
fn bad_joins_get_kafka_errors() {
    let t = Instant::now();
    let mut g = Group::new("g", Limits { max_size: 1, ..limits(0) });
    let mut r = req("", None, &[("range", "m")]);
    r.profile.session_timeout = Duration::from_millis(10);
    assert_eq!(now_result(g.join(r, t)).error, Some(Error::InvalidSessionTimeout));
    let (_m1, _j) = join_new(&mut g, t, &[("range", "1")]);
    assert_eq!(now_result(g.join(req("", None, &[("range", "2")]), t)).error, Some(Error::GroupMaxSizeReached));
    let mut g2 = Group::new("g2", limits(0));
    let (_a, _ja) = join_new(&mut g2, t, &[("range", "1")]);
    let r = now_result(g2.join(req("", None, &[("roundrobin", "2")]), t));
    assert_eq!(r.error, Some(Error::InconsistentGroupProtocol));
    assert_eq!(now_result(g2.join(req("ghost", None, &[("range", "2")]), t)).error, Some(Error::UnknownMemberId));
}

#[test]
fn protocol_selection_takes_the_common_favourite() {
    let t = Instant::now();
    let mut g = Group::new("g", limits(1000));
    let (_a, mut ja) = join_new(&mut g, t, &[("cooperative-sticky", "a"), ("range", "a")]);
    let (_b, mut jb) = join_new(&mut g, t, &[("range", "b"), ("cooperative-sticky", "b")]);
    let (_c, mut jc) = join_new(&mut g, t, &[("cooperative-sticky", "c")]);
    g.tick(t + Duration::from_secs(2));
    for j in [&mut ja, &mut jb, &mut jc] {
        assert_eq!(answered(j).protocol_name.as_deref(), Some("cooperative-sticky"));
    }
}

#[test]
fn leave_triggers_rebalance_and_commit_checks() {
    let t = Instant::now();
    let (mut g, m1) = stable_one(t);
    assert_eq!(g.check_commit(&who(&m1, 1)), Ok(()));
    assert_eq!(g.check_commit(&who(&m1, 0)), Err(Error::IllegalGeneration));
    assert_eq!(g.check_commit(&who("", -1)), Err(Error::UnknownMemberId));
    assert_eq!(g.leave_one("nobody", None), Err(Error::UnknownMemberId));
    assert_eq!(g.leave_one(&m1, None), Ok(m1.clone()));
    g.after_leave(t);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.check_commit(&who("", -1)), Ok(()), "simple commits once Empty");
    assert_eq!(g.mark_dead(), Ok(()));
}

#[test]
fn store_records_round_trip() {
    let e = store::Entry::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 3,
        value: Some(Committed { offset: 42, leader_epoch: 7, metadata: "meta".into(), commit_timestamp_ms: 1 }),
    };
    let (k, v) = store::encode(&e);
    assert_eq!(store::decode(k, v), Some(e));
    let rec = store::GroupRecord {
        protocol_type: Some("consumer".into()),
        generation: 5,
        protocol_name: Some("range".into()),
        leader: Some("m1".into()),
        members: vec![store::MemberRecord {
            id: "m1".into(),
            profile: MemberProfile {
                instance_id: Some("i".into()),
                client_id: "c".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"\x00\x01"))],
                session_timeout: Duration::from_secs(6),
                ..Default::default()
            },
            assignment: Bytes::from_static(b"\x09"),
        }],
    };
    let e = store::Entry::Group { group: "g".into(), value: Some(rec) };
    let (k, v) = store::encode(&e);
    assert_eq!(store::decode(k.clone(), v.clone()), Some(e));
    assert_eq!(store::decode(k.clone(), v.map(|v| v.slice(..v.len() - 1))), None, "truncated value");
    assert!(matches!(store::decode(k, None), Some(store::Entry::Group { value: None, .. })));
}

#[tokio::test]
async fn offsets_and_groups_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    let commit = |o| Committed { offset: o, leader_epoch: 0, metadata: format!("m{o}"), commit_timestamp_ms: crate::log::system_time_ms() };
    let fut = gc.commit_offsets("g", who("", -1), vec![(("t".into(), 0), commit(5)), (("t".into(), 1), commit(6))]).unwrap();
    fut.await.unwrap();
    gc.commit_offsets("g", who("", -1), vec![(("t".into(), 0), commit(9))]).unwrap().await.unwrap();
    gc.commit_offsets("gone", who("", -1), vec![(("t".into(), 0), commit(1))]).unwrap().await.unwrap();
    gc.delete_group("gone").unwrap();
    let r = match gc.join("s", JoinRequest { require_known_member_id: false, ..req("", None, &[("range", "m")]) }) {
        Reply::Wait(rx) => rx.await.unwrap(),
        Reply::Now(r) => r,
    };
    assert_eq!(r.error, None);
    let a = vec![(r.member_id.clone(), Bytes::from_static(b"assigned"))];
    assert!(matches!(gc.sync("s", who(&r.member_id, 1), (None, None), a), Reply::Wait(_)));
    logs.close().unwrap();
    drop(gc);
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    let got: Vec<_> = gc.fetch_offsets("g", None, true).into_iter().map(|(tp, c)| (tp, c.unwrap().map(|c| (c.offset, c.metadata)))).collect();
    assert_eq!(got, vec![(("t".into(), 0), Some((9, "m9".into()))), (("t".into(), 1), Some((6, "m6".into())))]);
    assert!(gc.describe("gone").is_none());
    // The member that was Stable before the restart carries on heartbeating.
    let d = gc.describe("s").unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Stable, 1));
    assert_eq!(d.members[0].assignment, Bytes::from_static(b"assigned"));
    assert_eq!(gc.heartbeat("s", who(&r.member_id, 1)), Ok(()));
}

/// Two members in CompletingRebalance at generation 2 (m1 the leader).
fn completing_two(t: Instant) -> (Group, String, String) {
    let (mut g, m1) = stable_one(t);
    let (m2, mut j2) = join_new(&mut g, t, &[("range", "m2")]);
    let mut j1 = waiting(g.join(req(&m1, None, &[("range", "m1")]), t));
    assert_eq!((answered(&mut j1).generation, answered(&mut j2).generation), (2, 2));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    (g, m1, m2)
}

#[test]
fn sync_answers_wait_until_the_assignment_is_stored() {
    let t = Instant::now();
    let (mut g, m1, m2) = completing_two(t);
    let a = vec![(m1.clone(), Bytes::from_static(b"x1")), (m2.clone(), Bytes::from_static(b"x2"))];
    let mut s1 = waiting(g.sync(who(&m1, 2), (None, None), a, t));
    let held = g.take_held_write().expect("the assignment is a held write");
    assert!(matches!(held, super::state::HeldWrite::Assignment { generation: 2 }));
    // Recorded as the generation it becomes, but nobody is answered yet; a follower
    // that syncs now waits too, and a heartbeat is fine.
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let mut s2 = waiting(g.sync(who(&m2, 2), (None, None), vec![], t));
    assert!(g.take_held_write().is_none(), "only the leader's SyncGroup stores");
    assert!(s1.try_recv().is_err() && s2.try_recv().is_err());
    assert_eq!(g.heartbeat(who(&m2, 2), t), Ok(()));
    g.write_done(held, Ok(()), t);
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!((answered(&mut s1).assignment, answered(&mut s2).assignment), (Bytes::from_static(b"x1"), Bytes::from_static(b"x2")));
}

#[test]
fn a_failed_assignment_write_answers_every_sync_with_the_error_and_rebalances() {
    let t = Instant::now();
    let (mut g, m1, m2) = completing_two(t);
    let mut s2 = waiting(g.sync(who(&m2, 2), (None, None), vec![], t));
    let mut s1 = waiting(g.sync(who(&m1, 2), (None, None), vec![(m1.clone(), Bytes::from_static(b"x1"))], t));
    let held = g.take_held_write().unwrap();
    g.write_done(held, Err(Error::NotCoordinator), t);
    let (r1, r2) = (answered(&mut s1), answered(&mut s2));
    assert_eq!((r1.error, r2.error), (Some(Error::NotCoordinator), Some(Error::NotCoordinator)));
    assert!(r1.assignment.is_empty());
    assert_eq!(g.state, GroupState::PreparingRebalance);
    // A late completion of the same generation changes nothing.
    g.write_done(super::state::HeldWrite::Assignment { generation: 2 }, Ok(()), t);
    assert_eq!(g.state, GroupState::PreparingRebalance);
}

#[test]
fn a_static_rejoin_that_cannot_be_stored_keeps_the_old_member_id() {
    let t = Instant::now();
    let mut g = Group::new("g", limits(0));
    let old = answered(&mut waiting(g.join(req("", Some("i1"), &[("range", "m")]), t))).member_id;
    now_result(sync_now(&mut g, &old, 1, vec![(old.clone(), Bytes::from_static(b"A"))], t).map_now());
    let mut rejoin = waiting(g.join(req("", Some("i1"), &[("range", "m")]), t));
    assert!(rejoin.try_recv().is_err(), "answered only once the new member id is stored");
    let held = g.take_held_write().unwrap();
    g.write_done(held, Err(Error::CoordinatorNotAvailable), t);
    let r = answered(&mut rejoin);
    assert_eq!(r.error, Some(Error::CoordinatorNotAvailable));
    let me = MemberRef { member_id: &old, instance_id: Some("i1"), generation: 1 };
    assert_eq!(g.heartbeat(me.clone(), t), Ok(()));
    assert_eq!(now_result(g.sync(me, (None, None), vec![], t)).assignment, Bytes::from_static(b"A"));
    assert_eq!(g.leader.as_deref(), Some(old.as_str()));
}

/// Through the coordinator and a real log: the leader's SyncGroup is answered only
/// once the log's high watermark passes the assignment record; meanwhile other
/// requests (and other groups) are served.
#[tokio::test]
async fn sync_group_is_answered_once_the_assignment_is_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    let r = match gc.join("g", JoinRequest { require_known_member_id: false, ..req("", None, &[("range", "m")]) }) {
        Reply::Wait(rx) => rx.await.unwrap(),
        Reply::Now(r) => r,
    };
    let store = gc.access("g").unwrap().unwrap();
    let hw = store.partition().high_watermark();
    store.partition().set_hw_cap(hw);
    let mut s = waiting(gc.sync("g", who(&r.member_id, 1), (None, None), vec![(r.member_id.clone(), Bytes::from_static(b"a"))]));
    assert!(store.end_offset() > hw, "the assignment is in the log");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.try_recv().is_err(), "answered before the assignment was replicated");
    assert_eq!(gc.heartbeat("g", who(&r.member_id, 1)), Ok(()));
    let other = gc.join("h", req("", None, &[("range", "m")]));
    assert_eq!(now_result(other).error, Some(Error::MemberIdRequired), "another group is served meanwhile");
    store.partition().set_hw_cap(i64::MAX);
    let answer = tokio::time::timeout(Duration::from_secs(10), s).await.unwrap().unwrap();
    assert_eq!((answer.error, answer.assignment), (None, Bytes::from_static(b"a")));
    assert_eq!(gc.describe("g").unwrap().state, GroupState::Stable);
    logs.close().unwrap();
}

/// The ticker drives real (short) timeouts: the state machine itself is tested with
/// explicit instants above, which is the clock seam.
#[tokio::test]
async fn ticker_expires_sessions() {
    let l = Limits { min_session_timeout: Duration::from_millis(1), ..limits(0) };
    let gc = GroupCoordinator::open(None, l, 4096).unwrap();
    let mut r = JoinRequest { require_known_member_id: false, ..req("", None, &[("range", "m")]) };
    r.profile.session_timeout = Duration::from_millis(300);
    let r = match gc.join("g", r) {
        Reply::Wait(rx) => rx.await.unwrap(),
        Reply::Now(r) => r,
    };
    let s = gc.sync("g", who(&r.member_id, 1), (None, None), vec![(r.member_id.clone(), Bytes::from_static(b"a"))]);
    assert!(matches!(s, Reply::Wait(_)));
    assert_eq!(gc.describe("g").unwrap().state, GroupState::Stable);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gc.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(gc.heartbeat("g", who(&r.member_id, 1)), Err(Error::UnknownMemberId));
}

#[test]
fn offsets_expire_only_when_the_group_is_left_empty() {
    let t = Instant::now();
    let week = Duration::from_secs(7 * 24 * 3600);
    let c = |ts| Committed { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: ts };
    // A group with a member keeps its offsets however old they are.
    let (mut g, m1) = stable_one(t);
    g.offsets.apply(("t".into(), 0), c(0), 1);
    assert!(g.expire_offsets(t + week * 2, i64::MAX, week).is_empty());
    // Once Empty, they go a retention period after the group emptied, not after the commit.
    g.leave_one(&m1, None).unwrap();
    g.after_leave(t + week);
    assert!(g.expire_offsets(t + week * 2 - Duration::from_secs(1), i64::MAX, week).is_empty());
    assert_eq!(g.expire_offsets(t + week * 2, i64::MAX, week), vec![("t".to_string(), 0)]);
    // Simple (never-joined) groups: per commit timestamp.
    let mut s = Group::new("s", limits(0));
    s.offsets.apply(("t".into(), 0), c(1_000), 1);
    s.offsets.apply(("t".into(), 1), c(5_000), 2);
    let week_ms = week.as_millis() as i64;
    assert_eq!(s.expire_offsets(t, 1_000 + week_ms, week), vec![("t".to_string(), 0)]);
    assert_eq!(s.offsets.iter().count(), 1);
}

#[tokio::test]
async fn expired_groups_disappear_and_stay_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let l = Limits { offsets_retention: Duration::from_secs(60), ..limits(0) };
    let gc = GroupCoordinator::open(Some(&logs), l, 4096).unwrap();
    let c = Committed { offset: 3, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: crate::log::system_time_ms() };
    gc.commit_offsets("old", who("", -1), vec![(("t".into(), 0), c.clone())]).unwrap().await.unwrap();
    gc.commit_offsets("new", who("", -1), vec![(("t".into(), 0), c)]).unwrap().await.unwrap();
    gc.expire_offsets(crate::log::system_time_ms() + 30_000);
    assert_eq!(gc.list().len(), 2);
    // "new" commits again later: only "old" is past retention at the next check.
    let later = Committed { offset: 4, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: crate::log::system_time_ms() + 50_000 };
    gc.commit_offsets("new", who("", -1), vec![(("t".into(), 0), later)]).unwrap().await.unwrap();
    gc.expire_offsets(crate::log::system_time_ms() + 61_000);
    let names: Vec<String> = gc.list().into_iter().map(|l| l.group_id).collect();
    assert_eq!(names, vec!["new".to_string()]);
    logs.close().unwrap();
    drop(gc);
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), l, 4096).unwrap();
    let names: Vec<String> = gc.list().into_iter().map(|l| l.group_id).collect();
    assert_eq!(names, vec!["new".to_string()]);
    assert_eq!(gc.fetch_offsets("new", None, false)[0].1.clone().unwrap().unwrap().offset, 4);
}

#[test]
fn leader_that_never_syncs_is_removed_and_followers_rejoin() {
    let t = Instant::now();
    let (mut g, m1) = stable_one(t);
    let (m2, mut j2) = join_new(&mut g, t, &[("range", "m2")]);
    let mut j1 = waiting(g.join(req(&m1, None, &[("range", "m1")]), t));
    let (_r1, r2) = (answered(&mut j1), answered(&mut j2));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    // A repeated JoinGroup (lost answer) gets the same generation, no new rebalance.
    let again = now_result(g.join(req(&m2, None, &[("range", "m2")]), t));
    assert_eq!((again.error, again.generation), (None, r2.generation));
    let mut s2 = waiting(sync_now(&mut g, &m2, 2, vec![], t));
    // m1 (leader) keeps heartbeating but never sends SyncGroup.
    assert_eq!(g.heartbeat(who(&m1, 2), t + Duration::from_secs(9)), Ok(()));
    g.tick(t + Duration::from_secs(30));
    assert_eq!(answered(&mut s2).error, Some(Error::RebalanceInProgress));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(who(&m1, 2), t + Duration::from_secs(30)), Err(Error::UnknownMemberId));
}

#[test]
fn static_member_leaves_by_instance_id() {
    let t = Instant::now();
    let mut g = Group::new("g", limits(0));
    let mut j = waiting(g.join(req("", Some("i1"), &[("range", "m")]), t));
    let id = answered(&mut j).member_id;
    assert_eq!(g.leave_one("someone-else", Some("i1")), Err(Error::FencedInstanceId));
    assert_eq!(g.leave_one("", Some("i1")), Ok(id));
    g.after_leave(t);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.leave_one("", Some("i1")), Err(Error::UnknownMemberId));
}

#[tokio::test]
async fn deleting_a_topic_drops_its_offsets() {
    let gc = GroupCoordinator::open(None, limits(0), 4096).unwrap();
    let c = Committed { offset: 2, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: crate::log::system_time_ms() };
    let commits = vec![(("t".into(), 0), c.clone()), (("u".into(), 0), c)];
    gc.commit_offsets("g", who("", -1), commits).unwrap().await.unwrap();
    gc.delete_topic_offsets("t");
    let left: Vec<Tp> = gc.fetch_offsets("g", None, false).into_iter().map(|(tp, _)| tp).collect();
    assert_eq!(left, vec![("u".to_string(), 0)]);
}

#[test]
fn limits_come_from_kafka_config_keys() {
    let mut c = crate::config::Config::default();
    let d = Limits::from_config(&c);
    assert_eq!((d.max_size, d.min_session_timeout, d.max_session_timeout), (i32::MAX as usize, Duration::from_secs(6), Duration::from_secs(1800)));
    assert_eq!((d.initial_rebalance_delay, d.offsets_retention), (Duration::from_secs(3), Duration::from_secs(7 * 24 * 3600)));
    for (k, v) in [("group.max.size", "3"), ("group.min.session.timeout.ms", "100"), ("group.initial.rebalance.delay.ms", "0"), ("offsets.retention.minutes", "2")] {
        assert!(c.set(k, v).unwrap(), "{k}");
    }
    let l = Limits::from_config(&c);
    assert_eq!((l.max_size, l.min_session_timeout, l.initial_rebalance_delay), (3, Duration::from_millis(100), Duration::ZERO));
    assert_eq!(l.offsets_retention, Duration::from_secs(120));
    assert!(c.set("group.max.size", "0").is_err());
}

/// Transactional offsets live in the group log: staged per producer, settled by
/// the markers, and a reopened (failed-over) shard rebuilds both from the log.
#[tokio::test]
async fn txn_offsets_replay_with_their_markers() {
    let dir = tempfile::tempdir().unwrap();
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    // Committed now: the coordinator's ticker expires offsets older than the retention
    // at once (it first runs as the coordinator opens), which an epoch-old commit is.
    let now = crate::log::system_time_ms();
    let c = |o| Committed { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: now };
    let t0: Tp = ("t".into(), 0);
    let t1: Tp = ("t".into(), 1);
    gc.commit_offsets("g", who("", -1), vec![(t0.clone(), c(1))]).unwrap().await.unwrap();
    gc.stage_txn_offsets("g", 7, vec![(t0.clone(), c(10))]).unwrap().await.unwrap();
    gc.stage_txn_offsets("g", 8, vec![(t1.clone(), c(20))]).unwrap().await.unwrap();
    let stable = |gc: &GroupCoordinator| gc.fetch_offsets("g", Some(vec![t0.clone(), t1.clone()]), true);
    assert_eq!(stable(&gc)[0].1, Err(()), "pending for producer 7");
    gc.complete_txn_offsets(0, 7, 0, 0, true).await.unwrap();
    assert_eq!(stable(&gc)[0].1.clone().unwrap().unwrap().offset, 10);
    assert_eq!(stable(&gc)[1].1, Err(()), "still pending for producer 8");
    logs.close().unwrap();
    drop(gc);
    // Reopen: 7's commit applied, 8's offsets still pending.
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    assert_eq!(stable(&gc)[0].1.clone().unwrap().unwrap().offset, 10);
    assert_eq!(stable(&gc)[1].1, Err(()));
    gc.complete_txn_offsets(0, 8, 0, 0, false).await.unwrap();
    assert_eq!(stable(&gc)[1].1, Ok(None), "aborted: dropped");
    logs.close().unwrap();
    drop(gc);
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let gc = GroupCoordinator::open(Some(&logs), limits(0), 4096).unwrap();
    let got = stable(&gc);
    assert_eq!((got[0].1.clone().unwrap().unwrap().offset, got[1].1.clone()), (10, Ok(None)));
    // A shard this node does not lead: NOT_COORDINATOR.
    assert_eq!(gc.complete_txn_offsets(3, 8, 0, 0, true).await, Err(Error::NotCoordinator));
}

//! Consumer-group APIs over the wire at every advertised version: FindCoordinator,
//! JoinGroup (with the v4+ MEMBER_ID_REQUIRED round trip), SyncGroup, Heartbeat,
//! OffsetCommit/OffsetFetch, DescribeGroups, ListGroups, LeaveGroup, DeleteGroups,
//! OffsetDelete; and a group waiting for a member that does not stall another group.

use super::*;

fn s(v: &str) -> kafka_protocol::protocol::StrBytes {
    v.to_string().into()
}

/// A broker whose group coordinator is ready: `__consumer_offsets` (one partition,
/// so one shard for every group) created by a first FindCoordinator and loaded.
async fn group_broker() -> TestBroker {
    let b = TestBroker::start_with(|c| {
        c.group_initial_rebalance_delay_ms = 0;
        c.offsets_topic_num_partitions = 1;
    })
    .await;
    let mut conn = b.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut correlation = 900;
    loop {
        correlation += 1;
        let r: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 3, correlation, &FindCoordinatorRequest::default().with_key(s("probe"))).await;
        let loaded = r.error_code == 0 && {
            let d = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("probe"))]);
            let d: DescribeGroupsResponse = call(&mut conn, ApiKey::DescribeGroups, 5, correlation, &d).await;
            d.groups[0].error_code == 0
        };
        if loaded {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "group coordinator not ready (FindCoordinator error {})", r.error_code);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn join_request(group: &str, member_id: &str, meta: &'static [u8]) -> JoinGroupRequest {
    use join_group_request::JoinGroupRequestProtocol;
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(meta))])
}

/// Join alone (answering MEMBER_ID_REQUIRED at v4+); returns (member id, generation).
async fn join_alone(conn: &mut TcpStream, v: i16, group: &str) -> (String, i32) {
    let mut r: JoinGroupResponse = call(conn, ApiKey::JoinGroup, v, 1, &join_request(group, "", b"\x00\x01meta")).await;
    if v >= 4 {
        assert_eq!(r.error_code, 79, "v{v}: MEMBER_ID_REQUIRED first");
        assert!(!r.member_id.is_empty());
        r = call(conn, ApiKey::JoinGroup, v, 2, &join_request(group, &r.member_id, b"\x00\x01meta")).await;
    }
    assert_eq!(r.error_code, 0, "v{v}");
    assert_eq!(r.leader, r.member_id, "v{v}: the only member leads");
    assert_eq!(r.members.len(), 1, "v{v}");
    assert_eq!(&r.members[0].metadata[..], b"\x00\x01meta", "v{v}: metadata byte for byte");
    assert_eq!(r.protocol_name.as_deref().map(|p| p.to_string()), Some("range".to_string()), "v{v}");
    (r.member_id.to_string(), r.generation_id)
}

#[tokio::test]
async fn group_apis_at_every_version() {
    let b = group_broker().await;
    let mut conn = b.connect().await;
    create_topic(&mut conn, "gt", 2).await;
    for v in 0..=6i16 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let r: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, v, 3, &req).await;
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert!(r.coordinators.iter().all(|c| c.error_code == 0 && c.node_id.0 == 1), "v{v}");
            assert_eq!(r.coordinators[1].key.as_str(), "g2");
        } else {
            assert_eq!((r.error_code, r.node_id.0), (0, 1), "v{v}");
        }
    }
    let txn = FindCoordinatorRequest::default().with_key(s("t")).with_key_type(1);
    let r: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 3, 4, &txn).await;
    assert_eq!((r.error_code, r.node_id.0), (0, 1), "this node coordinates transactions too");

    for v in 0..=9i16 {
        let group = format!("g-v{v}");
        let (member, generation) = join_alone(&mut conn, v, &group).await;
        let sv = v.min(5);
        let assignment = Bytes::from_static(b"\x00\x00assigned\xff");
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default().with_member_id(s(&member)).with_assignment(assignment.clone())]);
        if sv >= 5 {
            sync = sync.with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("range")));
        }
        let r: SyncGroupResponse = call(&mut conn, ApiKey::SyncGroup, sv, 5, &sync).await;
        assert_eq!((r.error_code, &r.assignment), (0, &assignment), "SyncGroup v{sv}");

        let hv = v.min(4);
        let hb = HeartbeatRequest::default().with_group_id(GroupId(s(&group))).with_generation_id(generation).with_member_id(s(&member));
        let r: HeartbeatResponse = call(&mut conn, ApiKey::Heartbeat, hv, 6, &hb).await;
        assert_eq!(r.error_code, 0, "Heartbeat v{hv}");
        let stale = hb.clone().with_generation_id(generation + 1);
        let r: HeartbeatResponse = call(&mut conn, ApiKey::Heartbeat, hv, 7, &stale).await;
        assert_eq!(r.error_code, 22, "Heartbeat v{hv}: ILLEGAL_GENERATION");

        let cv = v.clamp(2, 9);
        commit_and_fetch(&mut conn, cv, &group, &member, generation).await;
        describe_and_list(&mut conn, v.min(5), &group, &member, &assignment).await;
        leave(&mut conn, v.min(5), &group, &member).await;
        let r: DeleteGroupsResponse =
            call(&mut conn, ApiKey::DeleteGroups, v.min(2), 8, &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))])).await;
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{}", v.min(2));
    }
    b.stop().await;
}

async fn commit_and_fetch(conn: &mut TcpStream, v: i16, group: &str, member: &str, generation: i32) {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let parts = vec![
        OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(7).with_committed_leader_epoch(if v >= 6 { 0 } else { -1 }).with_committed_metadata(Some(s("meta"))),
        OffsetCommitRequestPartition::default().with_partition_index(5).with_committed_offset(1),
    ];
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(s("gt"))).with_partitions(parts)]);
    if (2..=4).contains(&v) {
        req.retention_time_ms = -1;
    }
    let r: OffsetCommitResponse = call(conn, ApiKey::OffsetCommit, v, 9, &req).await;
    let codes: Vec<i16> = r.topics[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![0, 3], "OffsetCommit v{v}: partition 5 does not exist");

    for fv in [v.clamp(1, 7), 8, 9] {
        let (offset, meta, epoch) = if fv >= 8 {
            use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
            let topics = vec![OffsetFetchRequestTopics::default().with_name(TopicName(s("gt"))).with_partition_indexes(vec![0, 1])];
            let req = OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(Some(topics)),
                OffsetFetchRequestGroup::default().with_group_id(GroupId(s("no-such-group"))).with_topics(None),
            ]);
            let r: OffsetFetchResponse = call(conn, ApiKey::OffsetFetch, fv, 10, &req).await;
            assert_eq!(r.groups.len(), 2);
            assert!(r.groups[1].topics.is_empty());
            let p = &r.groups[0].topics[0].partitions;
            assert_eq!(p[1].committed_offset, -1, "not committed");
            (p[0].committed_offset, p[0].metadata.clone(), p[0].committed_leader_epoch)
        } else {
            // v2+: null topics means every committed partition; v1 must list them.
            let topics = (fv < 2).then(|| {
                vec![offset_fetch_request::OffsetFetchRequestTopic::default().with_name(TopicName(s("gt"))).with_partition_indexes(vec![0])]
            });
            let req = OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(topics);
            let r: OffsetFetchResponse = call(conn, ApiKey::OffsetFetch, fv, 11, &req).await;
            let p = &r.topics[0].partitions[0];
            (p.committed_offset, p.metadata.clone(), p.committed_leader_epoch)
        };
        assert_eq!(offset, 7, "OffsetFetch v{fv}");
        assert_eq!(meta.as_deref().map(|m| m.to_string()), Some("meta".to_string()), "OffsetFetch v{fv}");
        if fv >= 5 && v >= 6 {
            assert_eq!(epoch, 0, "OffsetFetch v{fv}");
        }
    }
}

async fn describe_and_list(conn: &mut TcpStream, v: i16, group: &str, member: &str, assignment: &Bytes) {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group)), GroupId(s("absent"))]);
    let r: DescribeGroupsResponse = call(conn, ApiKey::DescribeGroups, v, 12, &req).await;
    let g = &r.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str(), g.protocol_data.as_str()), (0, "Stable", "range"), "DescribeGroups v{v}");
    assert_eq!(g.members[0].member_id.as_str(), member);
    assert_eq!(&g.members[0].member_assignment, assignment);
    assert_eq!(r.groups[1].group_state.as_str(), "Dead");

    let lv = v.min(5);
    let mut req = ListGroupsRequest::default();
    if lv >= 4 {
        req = req.with_states_filter(vec![s("Stable")]);
    }
    let r: ListGroupsResponse = call(conn, ApiKey::ListGroups, lv, 13, &req).await;
    assert!(r.groups.iter().any(|l| l.group_id.as_str() == group), "ListGroups v{lv}");
    if lv >= 4 {
        let r: ListGroupsResponse = call(conn, ApiKey::ListGroups, lv, 14, &ListGroupsRequest::default().with_states_filter(vec![s("Empty")])).await;
        assert!(!r.groups.iter().any(|l| l.group_id.as_str() == group), "ListGroups v{lv} filter");
    }
}

async fn leave(conn: &mut TcpStream, v: i16, group: &str, member: &str) {
    let req = if v >= 3 {
        use leave_group_request::MemberIdentity;
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![MemberIdentity::default().with_member_id(s(member)), MemberIdentity::default().with_member_id(s("ghost"))])
    } else {
        LeaveGroupRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(member))
    };
    let r: LeaveGroupResponse = call(conn, ApiKey::LeaveGroup, v, 15, &req).await;
    assert_eq!(r.error_code, 0, "LeaveGroup v{v}");
    if v >= 3 {
        let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
        assert_eq!(codes, vec![0, 25], "LeaveGroup v{v}: ghost is UNKNOWN_MEMBER_ID");
    }
}

/// Group A waits (up to its rebalance timeout) for a member that never rejoins;
/// group B, on another connection, forms and commits meanwhile.
#[tokio::test]
async fn a_stalled_group_does_not_stall_others() {
    let b = group_broker().await;
    let mut a1 = b.connect().await;
    let (m1, generation) = join_alone(&mut a1, 5, "slow").await;
    let sync = SyncGroupRequest::default().with_group_id(GroupId(s("slow"))).with_generation_id(generation).with_member_id(s(&m1));
    let _: SyncGroupResponse = call(&mut a1, ApiKey::SyncGroup, 3, 20, &sync).await;
    // A second member joins "slow": its JoinGroup now waits for m1, which never rejoins.
    let mut a2 = b.connect().await;
    let r: JoinGroupResponse = call(&mut a2, ApiKey::JoinGroup, 5, 21, &join_request("slow", "", b"x")).await;
    assert_eq!(r.error_code, 79);
    let pending = request_frame(ApiKey::JoinGroup, 5, 22, &join_request("slow", &r.member_id, b"x"));
    send_frame(&mut a2, &pending).await;
    // m1 is told to rejoin...
    let hb = HeartbeatRequest::default().with_group_id(GroupId(s("slow"))).with_generation_id(generation).with_member_id(s(&m1));
    let r: HeartbeatResponse = call(&mut a1, ApiKey::Heartbeat, 3, 23, &hb).await;
    assert_eq!(r.error_code, 27, "REBALANCE_IN_PROGRESS");
    // ...while another group forms at once.
    let mut c = b.connect().await;
    let started = std::time::Instant::now();
    join_alone(&mut c, 5, "fast").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // When m1 rejoins, the waiting JoinGroup completes with both members.
    let r: JoinGroupResponse = call(&mut a1, ApiKey::JoinGroup, 5, 24, &join_request("slow", &m1, b"\x00\x01meta")).await;
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, generation + 1, 2));
    let frame = recv_frame(&mut a2).await.unwrap();
    let mut body = response_body::<JoinGroupResponse>(frame, 5, 22);
    let r2 = JoinGroupResponse::decode(&mut body, 5).unwrap();
    assert_eq!((r2.error_code, r2.generation_id, r2.leader.as_str()), (0, generation + 1, m1.as_str()));
    b.stop().await;
}

/// A JoinGroup waiting for other members does not hold up shutdown: it is answered
/// with COORDINATOR_NOT_AVAILABLE and the connection drains.
#[tokio::test]
async fn shutdown_answers_waiting_joins() {
    let b = group_broker().await;
    let mut a1 = b.connect().await;
    let (m1, generation) = join_alone(&mut a1, 5, "g").await;
    let sync = SyncGroupRequest::default().with_group_id(GroupId(s("g"))).with_generation_id(generation).with_member_id(s(&m1));
    let _: SyncGroupResponse = call(&mut a1, ApiKey::SyncGroup, 3, 30, &sync).await;
    let mut a2 = b.connect().await;
    let r: JoinGroupResponse = call(&mut a2, ApiKey::JoinGroup, 5, 31, &join_request("g", "", b"x")).await;
    send_frame(&mut a2, &request_frame(ApiKey::JoinGroup, 5, 32, &join_request("g", &r.member_id, b"x"))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    b.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let frame = recv_frame(&mut a2).await.expect("the waiting JoinGroup is answered");
    let mut body = response_body::<JoinGroupResponse>(frame, 5, 32);
    assert_eq!(JoinGroupResponse::decode(&mut body, 5).unwrap().error_code, 15);
}

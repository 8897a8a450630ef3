//! ElectLeaders (43): a preferred (KIP-183) or unclean (KIP-460) leader election for
//! the partitions named, or for every partition when none are. The elections are
//! `controller::preferred`; one proposal carries them all, checked against the
//! newest image under the proposal lock. Asked for every partition, partitions
//! that need no election are left out of the answer, as Kafka's controller does.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::controller::preferred::{self, ElectError, ElectionType};
use crate::metadata::{Image, MetadataRecord};
use crate::protocol::ResponseError;

/// One partition's outcome: its error and message (None: elected).
type Outcome = Option<(ResponseError, String)>;

/// Every partition's outcome, by topic name (partitions in the order asked).
type Outcomes = BTreeMap<String, Vec<(i32, Outcome)>>;

pub async fn handle(ctx: &RequestContext, req: ElectLeadersRequest) -> ElectLeadersResponse {
    // v0 has no election type: it is the preferred election of KIP-183.
    let kind = if ctx.api_version == 0 { Some(ElectionType::Preferred) } else { ElectionType::from_wire(req.election_type) };
    // None = every partition; else topic → partitions, deduplicated (Kafka reads a set).
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topic_partitions.map(|tps| {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in tps {
            let ps = m.entry(tp.topic.0.to_string()).or_default();
            ps.extend(tp.partitions);
            ps.sort_unstable();
            ps.dedup();
        }
        m
    });
    let Some(kind) = kind else {
        let msg = format!("Unknown election type {}.", req.election_type);
        let mut resp = ElectLeadersResponse::default();
        resp.error_code = ResponseError::InvalidRequest.code();
        let failed = (ResponseError::InvalidRequest, msg);
        resp.replica_election_results = respond(wanted.unwrap_or_default().into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, Some(failed.clone()))).collect())).collect());
        return resp;
    };
    let broker = ctx.broker.clone();
    let all = wanted.is_none();
    let asked = wanted.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut outcomes = BTreeMap::new();
        let proposed = broker.metadata.propose(|img| {
            let (records, o) = elections(img, wanted.as_ref(), kind);
            outcomes = o;
            Ok(records)
        });
        proposed.map(|_| outcomes)
    })
    .await
    .expect("election task does not panic");
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            // Nothing was elected: every partition asked for gets the quorum's error.
            let failed = Some((super::metadata_error(&e), e.to_string()));
            let (_, asked) = elections(&ctx.broker.image(), asked.as_ref(), kind);
            let asked = asked.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|(i, _)| (i, failed.clone())).collect())).collect();
            return ElectLeadersResponse::default().with_replica_election_results(respond(asked));
        }
    };
    let outcomes = outcomes
        .into_iter()
        .map(|(t, ps): (String, Vec<(i32, Outcome)>)| {
            let ps = ps.into_iter().filter(|(_, o)| !(all && matches!(o, Some((ResponseError::ElectionNotNeeded, _))))).collect::<Vec<_>>();
            (t, ps)
        })
        .filter(|(_, ps)| !ps.is_empty())
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(respond(outcomes))
}

/// The records of the elections asked for on `img`, and every partition's outcome.
fn elections(img: &Image, wanted: Option<&BTreeMap<String, Vec<i32>>>, kind: ElectionType) -> (Vec<MetadataRecord>, Outcomes) {
    let every: BTreeMap<String, Vec<i32>>;
    let wanted = match wanted {
        Some(w) => w,
        None => {
            every = img.topics.values().map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect())).collect();
            &every
        }
    };
    let mut records = Vec::new();
    let mut outcomes = BTreeMap::new();
    for (name, partitions) in wanted {
        let topic = img.topic(name);
        let mut results = Vec::with_capacity(partitions.len());
        for &i in partitions {
            let p = topic.and_then(|t| usize::try_from(i).ok().and_then(|i| t.partitions.get(i)));
            let (Some(t), Some(p)) = (topic, p) else {
                results.push((i, Some((ResponseError::UnknownTopicOrPartition, format!("No such partition as {name}-{i}.")))));
                continue;
            };
            match preferred::elect(p, kind, |b| img.is_live(b)) {
                Ok(next) => {
                    tracing::info!(partition = %format!("{name}-{i}"), leader = next.leader, epoch = next.leader_epoch, ?kind, "leader elected on request");
                    records.push(MetadataRecord::partition(t.id, i, next));
                    results.push((i, None));
                }
                Err(e) => results.push((i, Some((elect_error(e), e.to_string())))),
            }
        }
        outcomes.insert(name.clone(), results);
    }
    (records, outcomes)
}

fn elect_error(e: ElectError) -> ResponseError {
    match e {
        ElectError::NotNeeded => ResponseError::ElectionNotNeeded,
        ElectError::PreferredNotAvailable => ResponseError::PreferredLeaderNotAvailable,
        ElectError::EligibleNotAvailable => ResponseError::EligibleLeadersNotAvailable,
    }
}

fn respond(outcomes: Outcomes) -> Vec<ReplicaElectionResult> {
    outcomes
        .into_iter()
        .map(|(topic, ps)| {
            let partition_result = ps
                .into_iter()
                .map(|(i, o)| {
                    let mut r = PartitionResult::default().with_partition_id(i);
                    if let Some((e, msg)) = o {
                        r.error_code = e.code();
                        r.error_message = Some(str_bytes(&msg));
                    }
                    r
                })
                .collect();
            ReplicaElectionResult::default().with_topic(TopicName(str_bytes(&topic))).with_partition_result(partition_result)
        })
        .collect()
}

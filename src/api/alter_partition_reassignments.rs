//! AlterPartitionReassignments (45, KIP-455): start, replace or cancel (a null
//! target) the reassignment of partitions. The transitions are
//! `controller::reassignment`; one proposal carries every partition's, each
//! validated against the newest image under the proposal lock. The reassignment
//! then runs on its own: new replicas fetch, and the leader's ISR growth completes it.

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};

use super::{RequestContext, str_bytes};
use crate::controller::reassignment::{self, ReassignError};
use crate::metadata::{Image, MetadataRecord};
use crate::protocol::ResponseError;

/// (topic, partition, target; None = cancel).
type Ask = (String, i32, Option<Vec<i32>>);

/// A partition's outcome: None = accepted.
type Outcome = Option<(ResponseError, String)>;

pub async fn handle(ctx: &RequestContext, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    // v0 has no flag: replication factor changes are allowed, as before KIP-860.
    let allow_rf_change = ctx.api_version < 1 || req.allow_replication_factor_change;
    let asks: Vec<Ask> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()))))
        .collect();
    let broker = ctx.broker.clone();
    let work = asks.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::new();
        broker
            .metadata
            .propose(|img| {
                let (records, o) = changes(img, &work, allow_rf_change);
                outcomes = o;
                Ok(records)
            })
            .map(|_| outcomes)
    })
    .await
    .expect("reassignment task does not panic");
    let outcomes: Vec<Outcome> = match result {
        Ok(o) => o,
        Err(e) => vec![Some((super::metadata_error(&e), e.to_string())); asks.len()],
    };
    let mut outcomes = outcomes.into_iter();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    if let Some(Some((e, msg))) = outcomes.next() {
                        r.error_code = e.code();
                        r.error_message = Some(str_bytes(&msg));
                    }
                    r
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    let mut resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if ctx.api_version >= 1 {
        resp.allow_replication_factor_change = allow_rf_change;
    }
    resp
}

/// The records that make `asks` on `img`, applied one after another to a working
/// copy (a partition named twice sees its first change), and each ask's outcome.
fn changes(img: &Image, asks: &[Ask], allow_rf_change: bool) -> (Vec<MetadataRecord>, Vec<Outcome>) {
    let mut work = img.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(asks.len());
    for (name, i, target) in asks {
        let topic = work.topic(name).cloned();
        let p = topic.as_ref().and_then(|t| usize::try_from(*i).ok().and_then(|i| t.partitions.get(i)).cloned());
        let (Some(t), Some(p)) = (topic, p) else {
            outcomes.push(Some((ResponseError::UnknownTopicOrPartition, format!("Unable to find partition {name}-{i}."))));
            continue;
        };
        let live = |b: i32| work.is_live(b);
        let next = match target {
            Some(target) => reassignment::validate(&p, target, |b| work.brokers.contains_key(&b), allow_rf_change).map(|()| reassignment::start(&p, target, live)),
            None => reassignment::cancel(&p, live).map(Some),
        };
        match next {
            Ok(Some(next)) => {
                tracing::info!(partition = %format!("{name}-{i}"), replicas = ?next.replicas, adding = ?next.adding_replicas, removing = ?next.removing_replicas, "partition reassignment");
                let r = MetadataRecord::partition(t.id, *i, next);
                work.apply(work.last_offset, &r).expect("built on the working image");
                records.push(r);
                outcomes.push(None);
            }
            Ok(None) => outcomes.push(None),
            Err(e @ ReassignError::InvalidAssignment(_)) => outcomes.push(Some((ResponseError::InvalidReplicaAssignment, e.to_string()))),
            Err(e @ ReassignError::NoneInProgress) => outcomes.push(Some((ResponseError::NoReassignmentInProgress, e.to_string()))),
        }
    }
    (records, outcomes)
}

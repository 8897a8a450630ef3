//! CreateTopics (19): validate each topic, then log it through the metadata store.
//! `validate_only` runs the same checks and writes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::topics::{self, NewTopic};
use super::{RequestContext, str_bytes};
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let v = ctx.api_version;
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default().with_name(t.name.clone());
        if !seen.insert(name.clone()) {
            // Kafka answers a name listed twice with INVALID_REQUEST for that name.
            set_error(&mut r, v, ResponseError::InvalidRequest, "Duplicate topic name in request.");
            results.push(r);
            continue;
        }
        let partitions = if t.num_partitions == -1 { ctx.broker.config.num_partitions } else { t.num_partitions };
        let replication_factor = if t.replication_factor == -1 { ctx.broker.config.default_replication_factor } else { t.replication_factor };
        if !t.assignments.is_empty() && (t.num_partitions != -1 || t.replication_factor != -1) {
            set_error(&mut r, v, ResponseError::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set.");
            results.push(r);
            continue;
        }
        let (partitions, replication_factor, assignments) = if t.assignments.is_empty() {
            (partitions, replication_factor, None)
        } else {
            let mut a: Vec<_> = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())).collect();
            a.sort_by_key(|(p, _)| *p);
            if a.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
                set_error(&mut r, v, ResponseError::InvalidReplicaAssignment, "Partitions should be a consecutive 0-based integer sequence.");
                results.push(r);
                continue;
            }
            let a: Vec<Vec<i32>> = a.into_iter().map(|(_, b)| b).collect();
            (a.len() as i32, a[0].len() as i16, Some(a))
        };
        let configs: BTreeMap<String, String> =
            t.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect();
        let nt = NewTopic { name, partitions, replication_factor, assignments, configs };
        let outcome = if req.validate_only {
            topics::validate(&ctx.broker, &ctx.broker.image(), &nt).map(|_| uuid::Uuid::nil())
        } else {
            topics::create(&ctx.broker, nt).await
        };
        match outcome {
            Ok(id) => {
                if v >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = replication_factor;
                    r.configs = Some(vec![]);
                }
                if v >= 7 {
                    r.topic_id = id;
                }
            }
            Err(e) => set_error(&mut r, v, e.error, &e.message),
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn set_error(r: &mut CreatableTopicResult, v: i16, e: ResponseError, message: &str) {
    r.error_code = e.code();
    if v >= 1 {
        r.error_message = Some(str_bytes(message));
    }
    if v >= 5 {
        r.num_partitions = -1;
        r.replication_factor = -1;
    }
}

//! Metadata (3): brokers, controller, topics with partitions, leaders and epochs.
//! Unknown topics are auto-created when both the request and
//! `auto.create.topics.enable` allow it.

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{RequestContext, cluster, str_bytes, topics};
use crate::metadata::{Image, TopicImage};
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let v = ctx.api_version;
    let broker = &ctx.broker;
    // Which topics: None = all; v0 also means all by an empty list.
    let wanted: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && v == 0 => None,
        Some(t) => Some(t.into_iter().map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)).collect()),
    };
    let auto_create = broker.config.auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);

    let mut out_topics = Vec::new();
    match wanted {
        None => {
            let image = broker.image();
            out_topics.extend(image.topics.values().map(|t| topic_entry(ctx, &image, t)));
        }
        Some(list) => {
            for (name, id) in list {
                out_topics.push(resolve(ctx, name, id, auto_create).await);
            }
        }
    }

    let image = broker.image();
    let brokers = cluster::live_brokers(broker, &image)
        .into_iter()
        .map(|b| {
            let mut e = MetadataResponseBroker::default().with_node_id(BrokerId(b.id)).with_host(str_bytes(&b.host)).with_port(b.port);
            if v >= 1 {
                e.rack = b.rack.as_deref().map(str_bytes);
            }
            e
        })
        .collect();
    let mut resp = MetadataResponse::default().with_brokers(brokers).with_topics(out_topics);
    if v >= 1 {
        // Admin requests go to the controller: it must name a live broker.
        resp.controller_id = BrokerId(cluster::controller_id(broker, &image));
    }
    if v >= 2 {
        resp.cluster_id = Some(str_bytes(&cluster::cluster_id(broker, &image)));
    }
    resp
}

async fn resolve(ctx: &RequestContext, name: Option<String>, id: Uuid, auto_create: bool) -> MetadataResponseTopic {
    let image = ctx.broker.image();
    let Some(name) = name else {
        // v10+: lookup by id.
        return match image.topic_by_id(&id) {
            Some(t) => topic_entry(ctx, &image, t),
            None => MetadataResponseTopic::default().with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code()),
        };
    };
    if let Some(t) = image.topic(&name) {
        return topic_entry(ctx, &image, t);
    }
    let err = |e: ResponseError| MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(&name)))).with_error_code(e.code());
    if topics::validate_name(&name).is_err() {
        return err(ResponseError::InvalidTopicException);
    }
    if !auto_create {
        return err(ResponseError::UnknownTopicOrPartition);
    }
    match topics::auto_create(&ctx.broker, &name).await {
        Ok(()) => match ctx.broker.image().topic(&name) {
            Some(t) => topic_entry(ctx, &ctx.broker.image(), t),
            // Deleted between creation and now: let the client retry.
            None => err(ResponseError::LeaderNotAvailable),
        },
        Err(e) => {
            tracing::warn!(topic = %name, error = %e.message, "auto-create failed");
            err(e.error)
        }
    }
}

/// One topic as the image has it. A partition without a leader answers
/// LEADER_NOT_AVAILABLE; replicas on fenced (or unknown) brokers are offline.
fn topic_entry(ctx: &RequestContext, image: &Image, t: &TopicImage) -> MetadataResponseTopic {
    let v = ctx.api_version;
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut e = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect());
            if v >= 7 {
                e.leader_epoch = p.leader_epoch;
            }
            if v >= 5 {
                e.offline_replicas = p.replicas.iter().filter(|&&r| !image.is_live(r)).map(|&r| BrokerId(r)).collect();
            }
            if p.leader < 0 {
                e.error_code = ResponseError::LeaderNotAvailable.code();
            }
            e
        })
        .collect();
    let mut e = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_is_internal(crate::coordinator::is_internal(&t.name))
        .with_partitions(partitions);
    if v >= 10 {
        e.topic_id = t.id;
    }
    e
}

//! DeleteTopics (20): remove the topic from metadata (durably), then its files.
//! A crash between the two leaves orphan directories, removed at the next start.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::log::manager::TopicPartition;
use crate::metadata::MetadataRecord;
use crate::metadata::image::ApplyError;
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let v = ctx.api_version;
    // v6 names topics by name or id in `topics`; earlier versions list names.
    let wanted: Vec<(Option<String>, Uuid)> = if v >= 6 {
        req.topics.into_iter().map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n.0.to_string()), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let mut r = DeletableTopicResult::default();
        if v >= 6 {
            r.topic_id = id;
        }
        r.name = name.as_ref().map(|n| TopicName(str_bytes(n)));
        match delete_one(ctx, name, id).await {
            Ok((name, id)) => {
                r.name = Some(TopicName(str_bytes(&name)));
                if v >= 6 {
                    r.topic_id = id;
                }
            }
            Err(e) => {
                r.error_code = e.code();
                if v >= 5 {
                    r.error_message = Some(str_bytes(&format!("{e:?}")));
                }
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete_one(ctx: &RequestContext, name: Option<String>, id: Uuid) -> Result<(String, Uuid), ResponseError> {
    if !ctx.broker.config.delete_topic_enable {
        return Err(ResponseError::TopicDeletionDisabled);
    }
    let broker = ctx.broker.clone();
    tokio::task::spawn_blocking(move || {
        let mut found = None;
        // Coordinator topics are never deleted (their state would go with them).
        let mut internal = false;
        let by_id = name.is_none();
        broker
            .metadata
            .propose(|img| {
                let t = match &name {
                    Some(n) => img.topic(n),
                    None => img.topic_by_id(&id),
                };
                let Some(t) = t else { return Err(ApplyError::UnknownTopicId(id)) };
                if crate::coordinator::is_internal(&t.name) {
                    internal = true;
                    return Ok(vec![]);
                }
                found = Some((t.name.clone(), t.id, t.partitions.len() as i32));
                Ok(vec![MetadataRecord::RemoveTopic { topic_id: t.id }])
            })
            .map_err(|e| match e {
                crate::metadata::store::Error::Rejected(_) if by_id => ResponseError::UnknownTopicId,
                crate::metadata::store::Error::Rejected(_) => ResponseError::UnknownTopicOrPartition,
                other => super::metadata_error(&other),
            })?;
        if internal {
            return Err(ResponseError::InvalidRequest);
        }
        let (name, id, partitions) = found.expect("set when the proposal succeeded");
        for p in 0..partitions {
            if let Err(e) = broker.logs.delete(&TopicPartition::new(&name, p)) {
                // Metadata already forgot the topic; the next start removes the files.
                tracing::warn!(topic = %name, partition = p, error = %e, "deleting partition files failed");
            }
        }
        // Committed offsets go with the topic (a topic re-created later starts afresh).
        broker.groups.delete_topic_offsets(&name);
        tracing::info!(topic = %name, "deleted topic");
        Ok((name, id))
    })
    .await
    .expect("delete task does not panic")
}

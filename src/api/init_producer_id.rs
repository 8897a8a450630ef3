//! InitProducerId (22): hand out producer ids for idempotent producers.
//!
//! Ids come from blocks reserved in the metadata log, so an id is never handed
//! out twice, even across crashes; a block is reserved only when the last is used.
//! Transactional ids are not served yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use parking_lot::Mutex;

use super::RequestContext;
use crate::metadata::MetadataRecord;
use crate::protocol::ResponseError;

/// Ids reserved per metadata write.
const BLOCK_SIZE: i64 = 1000;

/// The unused part of the current block: [next, end).
#[derive(Default)]
pub struct ProducerIdBlock {
    range: Mutex<Option<(i64, i64)>>,
}

impl ProducerIdBlock {
    fn next(&self, broker: &crate::broker::Broker) -> Result<i64, ResponseError> {
        let mut range = self.range.lock();
        if let Some((next, end)) = range.as_mut()
            && *next < *end
        {
            *next += 1;
            return Ok(*next - 1);
        }
        let mut start = 0;
        broker
            .metadata
            .propose(|img| {
                start = img.next_producer_id;
                Ok(vec![MetadataRecord::ProducerIds { next_producer_id: start + BLOCK_SIZE }])
            })
            // A quorum without a leader is worth a retry; the producer retries this code.
            .map_err(|e| if e.is_retriable() { ResponseError::CoordinatorNotAvailable } else { ResponseError::KafkaStorageError })?;
        *range = Some((start + 1, start + BLOCK_SIZE));
        Ok(start)
    }
}

pub async fn handle(ctx: &RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let fail = |e: ResponseError| InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return fail(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // KIP-360: a producer that already has an id may ask for an epoch bump.
    if req.producer_id.0 >= 0 {
        if req.producer_epoch < 0 || req.producer_epoch >= i16::MAX - 1 {
            // Epoch exhausted (or bogus): a fresh id, as Kafka does.
        } else {
            return InitProducerIdResponse::default().with_producer_id(req.producer_id).with_producer_epoch(req.producer_epoch + 1);
        }
    }
    let broker = ctx.broker.clone();
    let id = tokio::task::spawn_blocking(move || broker.producer_ids.next(&broker)).await.expect("id task does not panic");
    match id {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => fail(e),
    }
}

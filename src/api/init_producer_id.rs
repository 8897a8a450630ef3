//! InitProducerId (22): hand out producer ids for idempotent producers.
//!
//! Ids come from blocks reserved in the metadata log, so an id is never handed
//! out twice, even across crashes; a block is reserved only when the last is used.
//! With a transactional id, the transaction coordinator (`txn/`) answers: a new
//! id or an epoch bump, fencing the previous incarnation.

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
    if let Some(tid) = req.transactional_id.as_ref() {
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        let broker = ctx.broker.clone();
        // Called only for a new transactional id or an exhausted epoch. A new block of
        // ids is a metadata proposal, which blocks: off the async threads.
        let alloc = || {
            let broker = broker.clone();
            async move {
                tokio::task::spawn_blocking(move || broker.producer_ids.next(&broker))
                    .await
                    .map_err(|_| crate::txn::Error::Storage)?
                    .map_err(|_| crate::txn::Error::Storage)
            }
        };
        return match crate::txn::TxnCoordinator::init_producer_id(&ctx.broker, tid, i64::from(req.transaction_timeout_ms), expected, alloc).await {
            Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
            // PRODUCER_FENCED from v4 (KIP-588); older clients know INVALID_PRODUCER_EPOCH.
            Err(e) => InitProducerIdResponse::default().with_error_code(e.code_for(ctx.api_version, 4)).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
        };
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

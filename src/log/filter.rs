//! What the cleaner does with one batch (Kafka's `MemoryRecords.filterTo` with the
//! cleaner's retention rules), as a pure function of the batch and the pass's context.
//!
//! A record is kept when its offset is at or past the end of the offset map (not
//! cleaned yet), or it has a key whose latest offset is its own and it is not an
//! expired tombstone. Keyless records are dropped, as Kafka drops them from compacted
//! logs. Tombstones follow KIP-534: the first pass that keeps a batch of tombstones
//! stamps it with a delete horizon (now + `delete.retention.ms`, stored in
//! `baseTimestamp` with attribute bit 6, record timestamp deltas rebased so every
//! record keeps its timestamp); a later pass drops them once the horizon has passed.
//! So a tombstone survives at least `delete.retention.ms` after it was first cleaned,
//! long enough for a consumer that read its old value to also read its deletion.
//!
//! A batch keeps its base offset, producer id/epoch, base sequence, codec and
//! `lastOffsetDelta` (so the producer's last sequence survives); a batch left empty
//! is dropped, unless it is its producer's last data batch, which stays as an empty
//! header so idempotent sequence state survives a restart, or the last batch of the
//! cleaned range, which stays so the range's last offset is not lost (both as Kafka). Control batches and
//! transactional batches are kept as they are: sluice does not serve transactions
//! yet, so none could be proven aborted or safely decided.

use std::collections::HashMap;

use super::offset_map::OffsetMap;
use crate::protocol::record_codec::{self, BatchFields, DecodedBatch, Record, DELETE_HORIZON_BIT};
use crate::protocol::records::{BatchHeader, RecordsError};

pub struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not mapped: they are kept.
    pub map_end: i64,
    /// End of the cleanable range: the batch ending there is kept, emptied if need be.
    pub round_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub producer_last_offsets: &'a HashMap<i64, i64>,
    pub limit_bytes: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Copy the stored bytes unchanged.
    Keep,
    /// Leave the whole batch out (`records` records go).
    Drop { records: u64 },
    /// Write this batch instead (`dropped` records went).
    Rewrite { batch: Vec<u8>, dropped: u64 },
}

/// Decides the fate of `bytes`, one whole verified batch with header `h`. A batch that
/// does not decode is kept as is: the cleaner never loses what it cannot read.
pub fn decide(h: &BatchHeader, bytes: &[u8], ctx: &FilterContext<'_>) -> Decision {
    if h.is_control() || h.is_transactional() {
        return Decision::Keep;
    }
    match filter(h, bytes, ctx) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(offset = h.base_offset, error = %e, "cleaner keeps a batch it cannot decode");
            Decision::Keep
        }
    }
}

fn retained(batch: &DecodedBatch, r: &Record<'_>, ctx: &FilterContext<'_>) -> bool {
    let offset = r.offset(batch.header.base_offset);
    if offset >= ctx.map_end {
        return true;
    }
    let Some(key) = r.key else { return false };
    if ctx.map.get(key).is_some_and(|latest| latest > offset) {
        return false;
    }
    // A tombstone stays until the batch's delete horizon (none yet: stamped now).
    r.value.is_some() || batch.delete_horizon_ms().is_none_or(|h| ctx.now_ms < h)
}

fn filter(h: &BatchHeader, bytes: &[u8], ctx: &FilterContext<'_>) -> Result<Decision, RecordsError> {
    let batch = DecodedBatch::decode(bytes, ctx.limit_bytes)?;
    let total = batch.records().count();
    let kept: Vec<Record<'_>> = batch.records().filter(|r| retained(&batch, r, ctx)).collect();
    let dropped = (total - kept.len()) as u64;
    let last_of_producer =
        h.has_producer_id() && ctx.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
    if kept.is_empty() {
        if !last_of_producer && h.next_offset() != ctx.round_end {
            return Ok(Decision::Drop { records: dropped });
        }
        if total == 0 {
            return Ok(Decision::Keep);
        }
        // Kafka's empty header: no records, no codec, both timestamps the max.
        let fields = BatchFields {
            attributes: h.attributes & !0x07 & !DELETE_HORIZON_BIT,
            base_timestamp: h.max_timestamp,
            max_timestamp: h.max_timestamp,
            last_offset_delta: h.last_offset_delta,
        };
        return Ok(Decision::Rewrite { batch: record_codec::encode_batch(h, fields, &[])?, dropped });
    }
    let needs_horizon = batch.delete_horizon_ms().is_none() && kept.iter().any(|r| r.value.is_none());
    if dropped == 0 && !needs_horizon {
        return Ok(Decision::Keep);
    }
    let mut fields = BatchFields {
        attributes: h.attributes,
        base_timestamp: h.base_timestamp,
        max_timestamp: if h.is_log_append_time() {
            h.max_timestamp
        } else {
            kept.iter().map(|r| batch.timestamp_of(r)).max().unwrap_or(h.max_timestamp)
        },
        last_offset_delta: h.last_offset_delta,
    };
    let mut rebased = kept.clone();
    if needs_horizon {
        let horizon = ctx.now_ms.saturating_add(ctx.delete_retention_ms.max(0));
        fields.attributes |= DELETE_HORIZON_BIT;
        fields.base_timestamp = horizon;
        for r in &mut rebased {
            // Keep each record's absolute timestamp: base + delta before and after.
            r.timestamp_delta = h.base_timestamp.saturating_add(r.timestamp_delta).saturating_sub(horizon);
        }
    }
    Ok(Decision::Rewrite { batch: record_codec::encode_batch(h, fields, &rebased)?, dropped })
}

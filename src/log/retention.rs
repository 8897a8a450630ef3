//! Retention: moving the log start offset forward and deleting whole segments below it.
//!
//! Two things advance the log start offset: DeleteRecords (to any offset up to the high
//! watermark, possibly mid-segment) and retention by time (`retention.ms`) or size
//! (`retention.bytes`), which deletes the oldest whole segments. Deletion never passes
//! the high watermark (a consumer must never miss a record it could not yet read), and
//! a segment goes only with every segment before it, so the log stays a contiguous run
//! of segments. When every segment is deletable the log rolls first, so there is always
//! an (empty) active segment at the log end.
//!
//! Crash safety, in this order: (1) the new log start offset is written durably to the
//! checkpoint; (2) each deleted segment's files are renamed to `*.deleted`, oldest first;
//! (3) the caller removes the renamed files after releasing the log. Recovery
//! ([`super::recovery`]) removes `*.deleted` files and indexes left without a log file,
//! and deletes segments that lie wholly below the checkpointed log start, so a crash at
//! any point leaves a valid log whose start offset never moves back.
//!
//! Time is a parameter (`now_ms`): the broker passes the system clock, tests their own.

use std::path::PathBuf;

use super::partition::PartitionLog;
use super::{Error, Result};

/// What one retention pass or DeleteRecords did.
#[derive(Debug, Default)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
    /// Files renamed to `*.deleted`: remove them with
    /// [`super::segment::remove_deleted_files`] once the log's lock is released.
    pub renamed_files: Vec<PathBuf>,
}

impl PartitionLog {
    /// Bytes of all segments, the active one included (`retention.bytes` compares this).
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes()).sum()
    }

    /// DeleteRecords: makes `offset` the log start offset (durably) and deletes the
    /// segments that now lie wholly below it. `offset` must be within [0, high
    /// watermark]; at or below the current log start it changes nothing.
    pub fn delete_records_before(
        &mut self,
        offset: i64,
        high_watermark: i64,
    ) -> Result<RetentionOutcome> {
        let limit = high_watermark.min(self.log_end_offset);
        if !(0..=limit).contains(&offset) {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: limit,
            });
        }
        if offset > self.log_start_offset {
            self.set_log_start_durably(offset)?;
        }
        let count = self.count_deletable(None, high_watermark)?;
        self.delete_oldest(count)
    }

    /// One retention pass at time `now_ms`: deletes the oldest segments that are
    /// below the log start offset, or (with the `delete` cleanup policy) older than
    /// `retention.ms` or in excess of `retention.bytes`, never past `high_watermark`.
    pub fn delete_old_segments(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RetentionOutcome> {
        let count = self.count_deletable(Some(now_ms), high_watermark)?;
        self.delete_oldest(count)
    }

    /// How many segments, oldest first, may go. A segment qualifies when all of its
    /// offsets are below the high watermark, it is not an empty active segment, and
    /// one rule applies: the log start offset is at or past its end; its largest
    /// timestamp is older than `retention.ms`; or removing it keeps the log at or
    /// above `retention.bytes`. The first segment that does not qualify stops the walk.
    fn count_deletable(&self, now_ms: Option<i64>, high_watermark: i64) -> Result<usize> {
        let retention = now_ms.filter(|_| self.config.cleanup_delete);
        let mut excess_bytes = match retention {
            // Kafka treats any negative limit as "none".
            Some(_) if self.config.retention_bytes >= 0 => {
                self.size_bytes() as i64 - self.config.retention_bytes
            }
            _ => i64::MIN,
        };
        let mut count = 0;
        let mut iter = self.segments.values().peekable();
        while let Some(segment) = iter.next() {
            let next_base = iter.peek().map(|n| n.base_offset());
            let upper_offset = next_base.unwrap_or(self.log_end_offset);
            // An empty active segment stays; an empty sealed one (compacted away) may go.
            if (segment.is_empty() && next_base.is_none()) || upper_offset > high_watermark {
                break;
            }
            let below_start = next_base.is_some_and(|b| b <= self.log_start_offset);
            let too_old = match retention {
                Some(now) if self.config.retention_ms >= 0 => {
                    now.saturating_sub(segment.largest_timestamp_ms()?) > self.config.retention_ms
                }
                _ => false,
            };
            let size = segment.size_bytes() as i64;
            let too_big = excess_bytes != i64::MIN && excess_bytes - size >= 0;
            if !(below_start || too_old || too_big) {
                break;
            }
            if excess_bytes != i64::MIN {
                excess_bytes -= size;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Moves the log start offset and writes the checkpoint; on a failed write the old
    /// start stays, so nothing is reported (or deleted) that a crash could undo.
    fn set_log_start_durably(&mut self, offset: i64) -> Result<()> {
        let previous = self.log_start_offset;
        self.log_start_offset = offset;
        self.checkpoint().inspect_err(|_| self.log_start_offset = previous)?;
        // Unsynced: open applies the log start to the epoch cache again.
        if self.epochs.truncate_from_start(offset)
            && let Err(e) = self.epochs.write(&self.dir, false)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "leader epoch checkpoint failed");
        }
        Ok(())
    }

    /// Deletes the `count` oldest segments (crash-safe order: see the module docs).
    fn delete_oldest(&mut self, count: usize) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome {
            log_start_offset: self.log_start_offset,
            ..Default::default()
        };
        if count == 0 {
            return Ok(outcome);
        }
        if count == self.segments.len() {
            // Keep an active segment: roll so the new, empty one sits at the log end.
            self.roll()?;
        }
        let doomed: Vec<i64> = self.segments.keys().take(count).copied().collect();
        let first_kept = *self
            .segments
            .keys()
            .nth(count)
            .expect("fewer segments are deleted than exist: the active one stays");
        self.set_log_start_durably(self.log_start_offset.max(first_kept))?;
        for base in doomed {
            let segment = self
                .segments
                .remove(&base)
                .expect("base offsets were just read from the map");
            self.unsynced.remove(&base);
            outcome.deleted_bytes += segment.size_bytes();
            outcome.deleted_segments += 1;
            outcome.renamed_files.extend(segment.rename_to_deleted()?);
        }
        outcome.log_start_offset = self.log_start_offset;
        tracing::info!(
            dir = %self.dir.display(),
            segments = outcome.deleted_segments,
            bytes = outcome.deleted_bytes,
            log_start_offset = self.log_start_offset,
            "deleted old segments"
        );
        Ok(outcome)
    }
}

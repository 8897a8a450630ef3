//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`): a 128-bit hash of
//! each key and the offset of its latest record in the dirty range. Keys themselves are
//! not stored, so memory is bounded by the entry count, which `log.cleaner.dedupe.
//! buffer.size` and `log.cleaner.io.buffer.load.factor` fix before cleaning starts.
//! The hash uses two independently, randomly keyed SipHashes: a collision (which would
//! drop a record whose key merely hashes alike) is as unlikely as with Kafka's MD5.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// Bytes per bucket of the hash table: a 16-byte hash, an 8-byte offset and the
/// table's control byte (Kafka's slot is 24 bytes; the table adds one).
pub const SLOT_BYTES: usize = 25;
/// The table stays at most 7/8 full and grows by doubling.
const TABLE_LOAD: f64 = 7.0 / 8.0;

pub struct OffsetMap {
    hashers: (RandomState, RandomState),
    latest: HashMap<u128, i64>,
    max_entries: usize,
    /// Largest offset put (Kafka's `latestOffset`), -1 when empty.
    latest_offset: i64,
}

impl OffsetMap {
    /// A map whose table never outgrows `buffer_bytes`: the largest power-of-two
    /// bucket count that fits, filled to its own limit times `load_factor`.
    pub fn new(buffer_bytes: usize, load_factor: f64) -> OffsetMap {
        let slots = buffer_bytes / SLOT_BYTES;
        let buckets = if slots == 0 { 0 } else { 1usize << slots.ilog2() };
        let max_entries = (buckets as f64 * TABLE_LOAD * load_factor.clamp(0.0, 1.0)) as usize;
        OffsetMap {
            hashers: (RandomState::new(), RandomState::new()),
            latest: HashMap::new(),
            max_entries: max_entries.max(1),
            latest_offset: -1,
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let a = self.hashers.0.hash_one(key);
        let b = self.hashers.1.hash_one(key);
        (u128::from(a) << 64) | u128::from(b)
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Room for `more` new keys (a batch is mapped whole or not at all).
    pub fn has_room_for(&self, more: usize) -> bool {
        self.latest.len().saturating_add(more) <= self.max_entries
    }

    /// Records `offset` as the latest for `key` (offsets are put in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        let h = self.hash(key);
        self.latest.insert(h, offset);
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&self.hash(key)).copied()
    }

    #[cfg(test)]
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
}

/// Keeps the cleaner's disk traffic at `log.cleaner.io.max.bytes.per.second`.
pub struct Throttler {
    bytes_per_second: f64,
    start: Instant,
    bytes: u64,
}

impl Throttler {
    /// A non-positive or infinite rate means unthrottled.
    pub fn new(bytes_per_second: f64) -> Throttler {
        Throttler {
            bytes_per_second,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` of I/O and returns how long to sleep to stay under the rate.
    pub fn account(&mut self, bytes: u64) -> Duration {
        self.bytes = self.bytes.saturating_add(bytes);
        if !self.bytes_per_second.is_finite() || self.bytes_per_second <= 0.0 {
            return Duration::ZERO;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second);
        due.saturating_sub(self.start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_latest_and_bounds_entries() {
        // 10 slots → 8 buckets → 7 entries at the table's load → 3 at 0.5.
        let mut m = OffsetMap::new(SLOT_BYTES * 10, 0.5);
        assert!(m.has_room_for(3) && !m.has_room_for(4));
        m.put(b"a", 1);
        m.put(b"b", 2);
        m.put(b"a", 7);
        assert_eq!((m.get(b"a"), m.get(b"b"), m.get(b"c")), (Some(7), Some(2), None));
        assert_eq!((m.len(), m.latest_offset()), (2, 7));
    }

    #[test]
    fn throttler_asks_for_sleep_only_past_the_rate() {
        assert_eq!(Throttler::new(f64::INFINITY).account(1 << 40), Duration::ZERO);
        let mut t = Throttler::new(1_000.0);
        assert!(t.account(2_000) > Duration::from_millis(1_500));
    }
}

//! Transaction markers for `__consumer_offsets` partitions: what WriteTxnMarkers does
//! when a transaction that staged offsets ends (Kafka's
//! `GroupCoordinator.onTransactionCompleted`).
//!
//! PROVISIONAL: a placeholder so the WriteTxnMarkers handler compiles; the real body
//! (applying or dropping the offsets the producer staged in this coordinator) is being
//! written separately and replaces this file at merge. Today no transaction ever
//! contains a `__consumer_offsets` partition (staged offsets go through the
//! transaction coordinator), so this is never called.

use super::{GroupCoordinator, Result};

impl GroupCoordinator {
    /// Ends `producer_id`'s transactional offsets in `__consumer_offsets` partition
    /// `partition`: on commit they become the committed offsets, on abort they are
    /// dropped. Provisional: does nothing.
    pub async fn complete_txn_offsets(&self, partition: i32, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<()> {
        let _ = (partition, producer_id, producer_epoch, commit);
        Ok(())
    }
}

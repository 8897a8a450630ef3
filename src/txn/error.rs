//! Transaction coordinator errors, mapped to Kafka error codes in one place.

use crate::protocol::ResponseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("another operation on this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("a newer producer with this transactional id exists")]
    ProducerFenced,
    #[error("producer id does not belong to this transactional id")]
    InvalidProducerIdMapping,
    #[error("operation not valid in the transaction's state")]
    InvalidTxnState,
    #[error("transaction timeout outside (0, transaction.max.timeout.ms]")]
    InvalidTransactionTimeout,
    #[error("empty transactional id")]
    InvalidRequest,
    #[error("a limit on transactional ids, partitions, groups or offsets per transaction was reached")]
    LimitExceeded,
    #[error("transaction log write failed")]
    Storage,
    #[error("this node does not lead the transactional id's __transaction_state partition")]
    NotCoordinator,
    #[error("the transactional id's __transaction_state partition is still loading")]
    CoordinatorLoadInProgress,
    #[error("the transaction log's in-sync replicas are fewer than its min.insync.replicas")]
    NotEnoughReplicas,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The Kafka error for a request of `fenced_from` or newer; older versions (before
    /// KIP-588) know INVALID_PRODUCER_EPOCH instead of PRODUCER_FENCED.
    pub fn code_for(self, api_version: i16, fenced_from: i16) -> i16 {
        let e = match self {
            Error::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            Error::ProducerFenced if api_version >= fenced_from => ResponseError::ProducerFenced,
            Error::ProducerFenced => ResponseError::InvalidProducerEpoch,
            Error::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            Error::InvalidTxnState => ResponseError::InvalidTxnState,
            Error::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            Error::InvalidRequest => ResponseError::InvalidRequest,
            // Not retriable: the client surfaces it instead of spinning.
            Error::LimitExceeded => ResponseError::PolicyViolation,
            // Retriable for every transactional request: the client tries again
            // (Kafka maps a failed or under-replicated log append the same way).
            Error::Storage | Error::NotEnoughReplicas => ResponseError::CoordinatorNotAvailable,
            // The client looks the coordinator up again.
            Error::NotCoordinator => ResponseError::NotCoordinator,
            Error::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        };
        e.code()
    }
}

impl From<crate::coordinator::shard::Error> for Error {
    fn from(e: crate::coordinator::shard::Error) -> Error {
        use crate::coordinator::shard::Error as S;
        match e {
            S::NotCoordinator => Error::NotCoordinator,
            S::LoadInProgress => Error::CoordinatorLoadInProgress,
            S::NotEnoughReplicas => Error::NotEnoughReplicas,
            // Not replicated in time: COORDINATOR_NOT_AVAILABLE, the client retries.
            S::TimedOut | S::Storage => Error::Storage,
        }
    }
}

//! The group coordinator's errors, each mapped once to its Kafka error code.

use crate::protocol::ResponseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("member id required: rejoin with the id the coordinator assigned")]
    MemberIdRequired,
    #[error("generation does not match the group's")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("another member now owns this group.instance.id")]
    FencedInstanceId,
    #[error("protocol type or protocols incompatible with the group's")]
    InconsistentGroupProtocol,
    #[error("session timeout outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("group has group.max.size members")]
    GroupMaxSizeReached,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("group is being unloaded or deleted")]
    CoordinatorNotAvailable,
    #[error("group does not exist")]
    GroupIdNotFound,
    #[error("group still has members")]
    NonEmptyGroup,
    #[error("group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("member metadata is over the size limit")]
    MemberMetadataTooLarge,
    #[error("the coordinator log failed")]
    Storage,
    #[error("member epoch fenced: abandon partitions and rejoin")]
    FencedMemberEpoch,
    #[error("member epoch stale: retry with the epoch from the latest heartbeat")]
    StaleMemberEpoch,
    #[error("group.instance.id still used by another member")]
    UnreleasedInstanceId,
    #[error("server assignor not supported")]
    UnsupportedAssignor,
    #[error("invalid request")]
    InvalidRequest,
    #[error("this broker does not coordinate the group (its offsets partition is led elsewhere)")]
    NotCoordinator,
    #[error("the group's offsets partition is still being loaded")]
    CoordinatorLoadInProgress,
    #[error("the coordinator log did not replicate in time")]
    RequestTimedOut,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn code(self) -> i16 {
        let e = match self {
            Error::UnknownMemberId => ResponseError::UnknownMemberId,
            Error::MemberIdRequired => ResponseError::MemberIdRequired,
            Error::IllegalGeneration => ResponseError::IllegalGeneration,
            Error::RebalanceInProgress => ResponseError::RebalanceInProgress,
            Error::FencedInstanceId => ResponseError::FencedInstanceId,
            Error::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            Error::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            Error::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            Error::InvalidGroupId => ResponseError::InvalidGroupId,
            Error::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            Error::GroupIdNotFound => ResponseError::GroupIdNotFound,
            Error::NonEmptyGroup => ResponseError::NonEmptyGroup,
            Error::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            // Kafka has no dedicated code; the request itself is unacceptable.
            Error::MemberMetadataTooLarge => ResponseError::InvalidRequest,
            Error::Storage => ResponseError::KafkaStorageError,
            Error::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            Error::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            Error::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
            Error::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
            Error::InvalidRequest => ResponseError::InvalidRequest,
            Error::NotCoordinator => ResponseError::NotCoordinator,
            Error::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            Error::RequestTimedOut => ResponseError::RequestTimedOut,
        };
        e.code()
    }
}

/// Error code of an optional error (0 for none).
pub fn code_of(e: Option<Error>) -> i16 {
    e.map_or(0, Error::code)
}

impl From<crate::coordinator::shard::Error> for Error {
    /// For offset commits and the coordinator's other writes.
    fn from(e: crate::coordinator::shard::Error) -> Error {
        use crate::coordinator::shard::Error as S;
        match e {
            S::NotCoordinator => Error::NotCoordinator,
            S::LoadInProgress => Error::CoordinatorLoadInProgress,
            S::NotEnoughReplicas => Error::CoordinatorNotAvailable,
            S::TimedOut => Error::RequestTimedOut,
            S::Storage => Error::Storage,
        }
    }
}

/// A group metadata write (the assignment SyncGroup stores) that failed, as Kafka
/// answers it (`appendGroupMetadataErrorToResponseError`): retriable errors that
/// send the client to look the coordinator up again.
pub fn metadata_write_error(e: crate::coordinator::shard::Error) -> Error {
    use crate::coordinator::shard::Error as S;
    match e {
        S::NotEnoughReplicas | S::TimedOut => Error::CoordinatorNotAvailable,
        S::NotCoordinator | S::Storage => Error::NotCoordinator,
        S::LoadInProgress => Error::CoordinatorLoadInProgress,
    }
}

//! DescribeTransactions (65, `kafka-transactions describe`): the coordinator's state
//! of each transactional id. Sent to the id's coordinator (FindCoordinator key type
//! 1); any other node answers NOT_COORDINATOR for it, a loading one
//! COORDINATOR_LOAD_IN_PROGRESS, and an id it does not know TRANSACTIONAL_ID_NOT_FOUND.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};

use super::{RequestContext, str_bytes};
use crate::protocol::ResponseError;

/// Ids described per request (Kafka has no limit; the answer must stay bounded).
const MAX_IDS: usize = 10_000;

pub async fn handle(ctx: &RequestContext, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let txns = &ctx.broker.txns;
    let states = req
        .transactional_ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let state = TransactionState::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
            if i >= MAX_IDS {
                return state.with_error_code(ResponseError::PolicyViolation.code());
            }
            if let Err(e) = txns.check(&id) {
                return state.with_error_code(e.code_for(0, 0));
            }
            let Some(m) = txns.describe(&id) else {
                return state.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                topics.entry(t).or_default().push(*p);
            }
            let topics = topics.into_iter().map(|(t, ps)| TopicData::default().with_topic(TopicName(str_bytes(t))).with_partitions(ps)).collect();
            let ongoing = !matches!(m.state, crate::txn::TxnState::Empty | crate::txn::TxnState::CompleteCommit | crate::txn::TxnState::CompleteAbort);
            state
                .with_transaction_state(str_bytes(m.state.name()))
                .with_transaction_timeout_ms(i32::try_from(m.timeout_ms).unwrap_or(i32::MAX))
                .with_transaction_start_time_ms(if ongoing { m.txn_start_ms } else { -1 })
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

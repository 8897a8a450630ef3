//! ListTransactions (66, `kafka-transactions list`): the transactional ids this node
//! coordinates (the shards it has loaded), as each Kafka broker answers for its own;
//! the admin client asks every broker. Filters: states (names it does not know come
//! back in `unknown_state_filters`), producer ids, and (v1) transactions running
//! longer than a duration. COORDINATOR_LOAD_IN_PROGRESS while a shard is loading.
//! v2's id pattern (a Java regular expression) is not served.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};

use super::{RequestContext, str_bytes};
use crate::txn::TxnState;

const STATES: [TxnState; 6] =
    [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::PrepareAbort, TxnState::CompleteCommit, TxnState::CompleteAbort];

pub async fn handle(ctx: &RequestContext, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let txns = &ctx.broker.txns;
    let mut resp = ListTransactionsResponse::default();
    if let Err(e) = txns.loaded() {
        return resp.with_error_code(e.code_for(0, 0));
    }
    let mut states = Vec::new();
    for f in &req.state_filters {
        match STATES.iter().find(|s| s.name() == f.as_str()) {
            Some(s) => states.push(*s),
            None => resp.unknown_state_filters.push(f.clone()),
        }
    }
    // Only unknown names asked for: nothing can match (Kafka answers the same).
    if states.is_empty() && !req.state_filters.is_empty() {
        return resp;
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.api_version >= 1 { req.duration_filter } else { -1 };
    let now = crate::log::system_time_ms();
    for id in txns.ids() {
        let Some(m) = txns.describe(&id) else { continue };
        let keep = (states.is_empty() || states.contains(&m.state))
            && (pids.is_empty() || pids.contains(&m.producer_id))
            && (duration < 0 || (m.txn_start_ms >= 0 && now.saturating_sub(m.txn_start_ms) > duration));
        if keep {
            resp.transaction_states.push(
                TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(&id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(str_bytes(m.state.name())),
            );
        }
    }
    resp
}

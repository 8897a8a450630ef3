//! ListTransactions (66, `kafka-transactions list`): the transactional ids this node
//! coordinates (the shards it has loaded), as each Kafka broker answers for its own;
//! the admin client asks every broker. Filters: states (names it does not know come
//! back in `unknown_state_filters`), producer ids, and (v1) transactions running
//! longer than a duration, and (v2) ids that a regular expression matches whole (Java's
//! `Pattern.matches`; the `regex` crate's syntax, which agrees with Java's for the
//! usual patterns and runs in linear time whatever the input). A pattern that does not
//! compile gets INVALID_REGULAR_EXPRESSION. COORDINATOR_LOAD_IN_PROGRESS while a shard
//! is loading.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};

use super::{RequestContext, str_bytes};
use crate::protocol::ResponseError;
use crate::txn::TxnState;

/// Compiled size limit of an id pattern (the `regex` crate's default is 10 MiB): a
/// request cannot make the broker build a large automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

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
    let pattern = match req.transactional_id_pattern.as_deref().filter(|p| ctx.api_version >= 2 && !p.is_empty()) {
        None => None,
        Some(p) => match id_pattern(p) {
            Ok(re) => Some(re),
            Err(_) => return resp.with_error_code(ResponseError::InvalidRegularExpression.code()),
        },
    };
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.api_version >= 1 { req.duration_filter } else { -1 };
    let now = crate::log::system_time_ms();
    for id in txns.ids() {
        if pattern.as_ref().is_some_and(|re| !re.is_match(&id)) {
            continue;
        }
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

/// `pattern` anchored at both ends: Kafka matches the whole id (`Pattern.matches`).
fn id_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(PATTERN_SIZE_LIMIT).build()
}

#[cfg(test)]
mod tests {
    use super::id_pattern;

    #[test]
    fn patterns_match_whole_ids() {
        let re = id_pattern("orders-.*").unwrap();
        assert!(re.is_match("orders-1"));
        assert!(!re.is_match("old-orders-1"), "a match must start at the start");
        let exact = id_pattern("tx-1").unwrap();
        assert!(exact.is_match("tx-1") && !exact.is_match("tx-10"), "and end at the end");
        // An alternation stays inside the anchors.
        let alt = id_pattern("a|b").unwrap();
        assert!(alt.is_match("a") && !alt.is_match("ab") && !alt.is_match("xa"));
        assert!(id_pattern("[").is_err());
        assert!(id_pattern("(a{1000}){1000}").is_err(), "too large to compile");
    }
}

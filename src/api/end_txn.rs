//! EndTxn (26): commit or abort. Answered once the markers are durable in every
//! partition of the transaction, its offsets are applied (commit) and the
//! transaction log says Complete, so the client's next transaction never meets
//! CONCURRENT_TRANSACTIONS from this one. Versions 0–4: v5 belongs to transaction
//! version 2 (KIP-890), which we do not advertise.

use std::future::Future;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::RequestContext;
use crate::txn::TxnCoordinator;

/// The first version that knows PRODUCER_FENCED (KIP-588).
const FENCED_FROM: i16 = 2;

pub fn handle(ctx: &RequestContext, req: EndTxnRequest) -> impl Future<Output = EndTxnResponse> + Send + 'static {
    let broker = ctx.broker.clone();
    let v = ctx.api_version;
    async move {
        let r = TxnCoordinator::end_txn(&broker, &req.transactional_id, req.producer_id.0, req.producer_epoch, req.committed).await;
        EndTxnResponse::default().with_error_code(r.map_or_else(|e| e.code_for(v, FENCED_FROM), |_| 0))
    }
}

//! DescribeCluster (60): this node is the whole cluster and its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, str_bytes};
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let c = &ctx.broker.config;
    // endpoint_type 1 = brokers (v1+); 2 = controllers, which this node does not expose.
    if ctx.api_version >= 1 && req.endpoint_type != 1 {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("Only broker endpoints are served.")))
            .with_endpoint_type(req.endpoint_type);
    }
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.broker.identity.cluster_id))
        .with_controller_id(BrokerId(c.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default().with_broker_id(BrokerId(c.node_id)).with_host(str_bytes(&c.advertise_host)).with_port(c.advertise_port),
        ]);
    if ctx.api_version >= 1 {
        resp.endpoint_type = 1;
    }
    resp
}

//! DescribeCluster (60): the live brokers, the controller and the cluster id, from
//! the metadata image (see `cluster`), the same on every node.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, cluster, str_bytes};
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: DescribeClusterRequest) -> DescribeClusterResponse {
    // endpoint_type 1 = brokers (v1+); 2 = controllers, which this node does not expose.
    if ctx.api_version >= 1 && req.endpoint_type != 1 {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("Only broker endpoints are served.")))
            .with_endpoint_type(req.endpoint_type);
    }
    let image = ctx.broker.image();
    let brokers = cluster::live_brokers(&ctx.broker, &image)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port)
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&cluster::cluster_id(&ctx.broker, &image)))
        .with_controller_id(BrokerId(cluster::controller_id(&ctx.broker, &image)))
        .with_brokers(brokers);
    if ctx.api_version >= 1 {
        resp.endpoint_type = 1;
    }
    resp
}

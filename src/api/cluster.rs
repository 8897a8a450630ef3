//! What every node tells clients about the cluster, from the metadata image: the
//! cluster id, the live brokers and the controller. Metadata and DescribeCluster
//! share these so all nodes agree (coordinators: see `coordinator`).

use crate::broker::Broker;
use crate::metadata::{BrokerImage, Image};

/// The id logged by the first broker to register; before that, this node's own.
pub fn cluster_id(broker: &Broker, image: &Image) -> String {
    image.cluster_id.clone().unwrap_or_else(|| broker.identity.cluster_id.clone())
}

fn this_broker(broker: &Broker) -> BrokerImage {
    let c = &broker.config;
    BrokerImage {
        id: c.node_id,
        incarnation: broker.membership.registration.incarnation,
        host: c.advertise_host.clone(),
        port: c.advertise_port,
        rack: broker.membership.registration.rack.clone(),
        fenced: false,
    }
}

/// Unfenced registered brokers by id. Until any broker is live (a quorum still
/// starting), this node alone, so clients always have somewhere to go.
pub fn live_brokers(broker: &Broker, image: &Image) -> Vec<BrokerImage> {
    let live: Vec<BrokerImage> = image.live_brokers().into_iter().cloned().collect();
    if live.is_empty() { vec![this_broker(broker)] } else { live }
}

/// The controller clients send admin requests to: the quorum leader when it is a
/// live broker, else this node. Any node answers admin requests (followers forward
/// their proposals), so this only has to name a broker that is up.
pub fn controller_id(broker: &Broker, image: &Image) -> i32 {
    match broker.metadata.raft().metrics().current_leader {
        Some(l) if i32::try_from(l).is_ok_and(|l| image.is_live(l)) => l as i32,
        _ => broker.config.node_id,
    }
}

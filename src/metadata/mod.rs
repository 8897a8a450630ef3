//! Cluster metadata: records, the image they build, and the log that orders them.
//! Handlers read `MetadataStore::image()` and change things only by `propose`.

pub mod identity;
pub mod image;
pub mod legacy;
#[cfg(test)]
mod quorum_tests;
#[cfg(test)]
mod dynamic_quorum_tests;
pub mod record;
pub mod store;

pub use image::{BrokerImage, Image, PartitionImage, TopicImage};
pub use record::{ConfigResource, MetadataRecord};
pub use store::MetadataStore;

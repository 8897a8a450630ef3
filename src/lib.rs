//! sluice: a Kafka-wire-compatible broker.
//!
//! Dependencies point one way: `server → api → (log | metadata) → storage`.
//! `log/` knows raw record-batch bytes only; it never names a protocol message type.

pub mod api;
pub mod broker;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod group;
pub mod log;
pub mod metadata;
pub mod protocol;
pub mod raft;
pub mod replication;
pub mod server;
pub mod txn;

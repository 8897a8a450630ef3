//! The broker side of membership: register this broker in the metadata log with a
//! fresh incarnation, then heartbeat the quorum leader every
//! `broker.heartbeat.interval.ms` until shutdown. A heartbeat the leader does not
//! recognise (the registration is missing or from another incarnation) makes the
//! broker register again.
//!
//! A single-voter cluster registers synchronously, unfenced, in `Broker::open`, so
//! the broker is live (and can place partitions on itself) before it listens. In a
//! quorum, registration runs in the background with retries (the quorum may still
//! be electing) and the leader's controller unfences the broker on its first beat.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Registration;
use crate::config::Config;
use crate::metadata::{Image, MetadataStore};
use crate::raft::network::HeartbeatAck;

/// Pause before retrying a failed registration or an unanswered heartbeat.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

pub struct Membership {
    pub registration: Registration,
    config: Arc<Config>,
    cluster_id: String,
    /// True once shutdown began: no more heartbeats or registrations.
    stop: watch::Sender<bool>,
    /// The register-and-heartbeat task, awaited by `stop`.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Membership {
    /// This process's membership: a new incarnation on every start.
    pub fn new(config: Arc<Config>, cluster_id: String) -> Arc<Membership> {
        let registration = Registration {
            id: config.node_id,
            incarnation: Uuid::new_v4(),
            host: config.advertise_host.clone(),
            port: config.advertise_port,
            rack: config.raw.get("broker.rack").cloned(),
        };
        Arc::new(Membership { registration, config, cluster_id, stop: watch::channel(false).0, task: Mutex::new(None) })
    }

    pub fn id(&self) -> i32 {
        self.registration.id
    }

    /// True when `image` holds this process's registration.
    pub fn is_registered(&self, image: &Image) -> bool {
        image.brokers.get(&self.id()).is_some_and(|b| b.incarnation == self.registration.incarnation)
    }

    /// Register through the quorum. Blocking (it proposes).
    pub fn register(&self, store: &MetadataStore, unfence_now: bool) -> crate::metadata::store::Result<()> {
        store.propose(|img| Ok(super::registration_records(img, &self.registration, unfence_now, &self.cluster_id, &self.config)))?;
        Ok(())
    }

    /// Start registering (unless done) and heartbeating on the current runtime.
    pub fn start(self: &Arc<Self>, store: &Arc<MetadataStore>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let task = rt.spawn(self.clone().run(Arc::downgrade(store)));
        *self.task.lock() = Some(task);
    }

    /// Stop heartbeating and wait until no heartbeat is in flight, so nothing this
    /// process sends can unfence it after a controlled shutdown.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Wait (up to `timeout`) until this broker is registered and unfenced; false on timeout.
    pub async fn wait_live(&self, store: &MetadataStore, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let image = store.image();
            if self.is_registered(&image) && image.is_live(self.id()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run(self: Arc<Self>, store: Weak<MetadataStore>) {
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let Some(s) = store.upgrade() else { return };
            let pause = if self.is_registered(&s.image()) { self.beat(&s).await } else { self.register_in_background(s).await };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One heartbeat; returns how long to wait before the next.
    async fn beat(&self, store: &MetadataStore) -> Duration {
        let r = &self.registration;
        match store.raft().heartbeat(r.id, r.incarnation).await {
            Ok(HeartbeatAck::Ok) => Duration::from_millis(self.config.broker_heartbeat_interval_ms),
            Ok(HeartbeatAck::UnknownBroker) => {
                tracing::info!(broker = r.id, "the quorum leader does not know this broker's registration; registering again");
                // Will re-register once the image shows the registration missing; until
                // then retry soon (the leader may just not have applied it yet).
                RETRY_PAUSE
            }
            Ok(HeartbeatAck::NotLeader) => RETRY_PAUSE,
            Err(e) => {
                tracing::debug!(error = %e, "broker heartbeat failed");
                RETRY_PAUSE
            }
        }
    }

    async fn register_in_background(self: &Arc<Self>, store: Arc<MetadataStore>) -> Duration {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.register(&store, false)).await {
            Ok(Ok(())) => {
                tracing::info!(broker = self.id(), incarnation = %self.registration.incarnation, "registered with the metadata quorum");
                Duration::ZERO
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "broker registration failed; retrying");
                RETRY_PAUSE
            }
            Err(e) => {
                tracing::warn!(error = %e, "broker registration task failed");
                RETRY_PAUSE
            }
        }
    }
}

//! Broker liveness as the quorum leader sees it: the last heartbeat of each broker
//! (in memory only; meaningful only on the leader, which is where heartbeats are
//! sent), and the pure rule that turns heartbeats into fence / unfence decisions.
//!
//! Grace period: a node that becomes leader has heard nobody yet, so every
//! unfenced broker's clock starts at the moment it took over (`leader_since`).
//! A fenced broker is unfenced only by a heartbeat the leader received after it
//! saw the broker fenced (the controller clears older beats then), so a
//! controlled shutdown is not undone by the broker's last heartbeat before it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::metadata::Image;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    pub incarnation: Uuid,
    pub at: Instant,
}

/// The heartbeat table; shared by the raft transport (which records beats sent to
/// this node as leader) and the controller loop (which reads them).
#[derive(Debug, Default)]
pub struct Liveness {
    /// Broker id → its latest heartbeat received here.
    beats: Mutex<HashMap<i32, Beat>>,
}

impl Liveness {
    pub fn record(&self, broker_id: i32, incarnation: Uuid, at: Instant) {
        self.beats.lock().insert(broker_id, Beat { incarnation, at });
    }

    pub fn get(&self, broker_id: i32) -> Option<Beat> {
        self.beats.lock().get(&broker_id).copied()
    }

    /// Drop a broker's beat unless it arrived after `before`.
    pub fn forget_before(&self, broker_id: i32, before: Instant) {
        let mut beats = self.beats.lock();
        if beats.get(&broker_id).is_some_and(|b| b.at <= before) {
            beats.remove(&broker_id);
        }
    }

    pub fn clear(&self) {
        self.beats.lock().clear();
    }
}

/// What the controller should change about broker liveness now.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Unfenced brokers silent for longer than the session timeout.
    pub fence: Vec<i32>,
    /// Fenced brokers that heartbeat with their registered incarnation.
    pub unfence: Vec<i32>,
}

/// Decide fencing from the image and the heartbeat table at `now`, for a leader
/// that has led since `leader_since`.
pub fn judge(image: &Image, beat: impl Fn(i32) -> Option<Beat>, leader_since: Instant, now: Instant, session_timeout: Duration) -> Verdict {
    let mut v = Verdict::default();
    for b in image.brokers.values() {
        let current = beat(b.id).filter(|h| h.incarnation == b.incarnation);
        if b.fenced {
            if current.is_some_and(|h| now.saturating_duration_since(h.at) < session_timeout) {
                v.unfence.push(b.id);
            }
        } else {
            let last = current.map_or(leader_since, |h| h.at.max(leader_since));
            if now.saturating_duration_since(last) > session_timeout {
                v.fence.push(b.id);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;

    #[test]
    fn silence_fences_and_a_heartbeat_unfences() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(9);
        let mut img = Image::empty();
        let inc = [Uuid::new_v4(), Uuid::new_v4()];
        for (i, id) in [1, 2].into_iter().enumerate() {
            img.apply(0, &MetadataRecord::RegisterBroker { id, incarnation: inc[i], host: "h".into(), port: 1, rack: None }).unwrap();
            img.apply(0, &MetadataRecord::UnfenceBroker { id }).unwrap();
        }
        let table = Liveness::default();
        // Grace: nobody heard yet, but the leader just took over.
        assert_eq!(judge(&img, |id| table.get(id), t0, t0 + Duration::from_secs(5), timeout), Verdict::default());
        table.record(1, inc[0], t0 + Duration::from_secs(8));
        let v = judge(&img, |id| table.get(id), t0, t0 + Duration::from_secs(10), timeout);
        assert_eq!(v, Verdict { fence: vec![2], unfence: vec![] });
        // A beat from another incarnation (an old process) does not count.
        table.record(2, Uuid::new_v4(), t0 + Duration::from_secs(10));
        assert_eq!(judge(&img, |id| table.get(id), t0, t0 + Duration::from_secs(10), timeout).fence, vec![2]);

        img.apply(0, &MetadataRecord::FenceBroker { id: 2 }).unwrap();
        table.record(2, inc[1], t0 + Duration::from_secs(11));
        let v = judge(&img, |id| table.get(id), t0, t0 + Duration::from_secs(12), timeout);
        assert_eq!(v, Verdict { fence: vec![], unfence: vec![2] });
        table.forget_before(2, t0 + Duration::from_secs(11));
        assert!(table.get(2).is_none());
    }
}

//! The shard map's load/unload states and a shard write's wait for the high
//! watermark, on real logs with a hand-made leadership.

use std::cell::RefCell;

use super::*;
use crate::metadata::PartitionImage;

struct Fixture {
    _dir: tempfile::TempDir,
    logs: Arc<LogManager>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::new(dir.path()).unwrap();
        Fixture { _dir: dir, logs }
    }

    /// This node (1) leading `partition` at `epoch` with ISR `isr`.
    fn led(&self, partition: i32, epoch: i32, isr: &[i32]) -> Led {
        let tp = TopicPartition::new("__test_state", partition);
        let log = self.logs.open(&tp, super::super::topic::log_config()).unwrap();
        let image = PartitionImage { leader: 1, leader_epoch: epoch, replicas: isr.to_vec(), isr: isr.to_vec(), ..Default::default() };
        let leader = Arc::new(LeaderState::new(tp, uuid::Uuid::nil(), 1, &image, log.log_end_offset(), std::time::Instant::now()));
        Led { epoch, log, leader }
    }

    fn shard(&self, partition: i32, led: &Led, min_isr: usize, timeout: Duration) -> ShardStore {
        let mut s = ShardStore::new(&self.logs, partition, led.log.clone(), led.epoch, Some(led.leader.clone()), timeout);
        s.min_isr = min_isr;
        s
    }
}

fn leadership(partitions: i32, led: &[(i32, &Led)]) -> Leadership {
    Leadership { partitions, led: led.iter().map(|(p, l)| (*p, (*l).clone())).collect() }
}

/// Runs `set_leadership` and returns the partitions it unloaded and those it started loading.
fn reconcile(shards: &Shards<()>, l: &Leadership) -> (Vec<i32>, Vec<(i32, i32)>) {
    let (unloaded, loading) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    shards.set_leadership(l, |p| unloaded.borrow_mut().push(p), |p, led| loading.borrow_mut().push((p, led.epoch)));
    (unloaded.into_inner(), loading.into_inner())
}

fn key_of(partition: i32, partitions: i32) -> String {
    (0..).map(|i| format!("key-{i}")).find(|k| super::super::partition_for(k, partitions) == partition).unwrap()
}

#[test]
fn shards_load_on_leadership_and_unload_when_it_goes_or_changes_epoch() {
    let f = Fixture::new();
    let shards: Shards<()> = Shards::default();
    let (mine, other) = (key_of(1, 4), key_of(2, 4));
    assert_eq!(shards.access(&mine).err(), Some(Error::NotCoordinator), "no topic yet");

    let at3 = f.led(1, 3, &[1]);
    assert_eq!(reconcile(&shards, &leadership(4, &[(1, &at3)])), (vec![], vec![(1, 3)]));
    assert_eq!(shards.partitions(), 4);
    assert_eq!(shards.access(&mine).err(), Some(Error::LoadInProgress));
    assert_eq!(shards.access(&other).err(), Some(Error::NotCoordinator));
    assert!(shards.any_loading());
    // The same leadership again: nothing to load or unload.
    assert_eq!(reconcile(&shards, &leadership(4, &[(1, &at3)])), (vec![], vec![]));

    // A failed replay leaves it Loading.
    let failed = shards.finish_load(f.shard(1, &at3, 1, Duration::from_secs(1)), |_| Err::<(), _>(crate::log::Error::Io(std::io::Error::other("x"))), |_, ()| ());
    assert!(failed.is_none());
    assert_eq!(shards.access(&mine).err(), Some(Error::LoadInProgress));

    let published = RefCell::new(None);
    let loaded = shards.finish_load(f.shard(1, &at3, 1, Duration::from_secs(1)), |_| Ok(7), |s, n| *published.borrow_mut() = Some((s.leader_epoch(), n)));
    assert!(loaded.is_some());
    assert_eq!(published.into_inner(), Some((3, 7)));
    assert_eq!(shards.access(&mine).map(|s| s.leader_epoch()).ok(), Some(3));
    assert_eq!(shards.get(1).map(|s| s.partition_index).ok(), Some(1));
    assert!(!shards.any_loading());

    // A new leader epoch: unloaded and loaded again; a replay of the old epoch that
    // finishes late is not published.
    let at4 = f.led(1, 4, &[1]);
    assert_eq!(reconcile(&shards, &leadership(4, &[(1, &at4)])), (vec![1], vec![(1, 4)]));
    assert!(shards.finish_load(f.shard(1, &at3, 1, Duration::from_secs(1)), |_| Ok(()), |_, ()| panic!("stale load published")).is_none());
    assert_eq!(shards.access(&mine).err(), Some(Error::LoadInProgress));

    // Leadership gone (the topic's partition count is kept): unloaded, and the load
    // still running for it is not published.
    assert_eq!(reconcile(&shards, &leadership(0, &[])), (vec![1], vec![]));
    assert_eq!(shards.partitions(), 4);
    assert!(shards.finish_load(f.shard(1, &at4, 1, Duration::from_secs(1)), |_| Ok(()), |_, ()| panic!("unloaded load published")).is_none());
    assert_eq!(shards.access(&mine).err(), Some(Error::NotCoordinator));
    f.logs.close().unwrap();
}

#[test]
fn a_resigned_shard_is_not_served() {
    let f = Fixture::new();
    let shards: Shards<()> = Shards::default();
    let led = f.led(0, 1, &[1]);
    reconcile(&shards, &leadership(1, &[(0, &led)]));
    shards.finish_load(f.shard(0, &led, 1, Duration::from_secs(1)), |_| Ok(()), |_, ()| ()).unwrap();
    assert!(shards.access("k").is_ok());
    led.leader.resign();
    assert_eq!(shards.access("k").err(), Some(Error::NotCoordinator));
    assert_eq!(shards.get(0).err(), Some(Error::NotCoordinator));
    f.logs.close().unwrap();
}

fn batch() -> BytesMut {
    crate::protocol::encode_plain_batch([(bytes::Bytes::from_static(b"k"), Some(bytes::Bytes::from_static(b"v")))], 0).unwrap()
}

#[tokio::test]
async fn a_write_is_confirmed_once_the_high_watermark_passes_it() {
    let f = Fixture::new();
    let led = f.led(0, 2, &[1]);
    let s = f.shard(0, &led, 1, Duration::from_secs(10));
    assert_eq!(s.append_batch(batch()), Ok(0..1));
    let r = s.append_batch(batch()).unwrap();
    assert_eq!(r, 1..2);
    assert_eq!(s.wait_replicated(r.end).await, Ok(()));
    assert!(s.partition().high_watermark() >= 2);
    assert_eq!(s.end_offset(), 2);
    let mut seen = Vec::new();
    s.replay_batches(|b| seen.push((b.header.base_offset, b.records().count()))).unwrap();
    assert_eq!(seen, vec![(0, 1), (1, 1)]);
    f.logs.close().unwrap();
}

#[tokio::test]
async fn a_write_fails_when_leadership_is_lost_before_it_replicates() {
    let f = Fixture::new();
    let led = f.led(0, 2, &[1, 2]);
    // The follower has not fetched: the high watermark stays below the write.
    led.log.set_hw_cap(0);
    let s = Arc::new(f.shard(0, &led, 1, Duration::from_secs(30)));
    let end = s.append_batch(batch()).unwrap().end;
    let waiting = tokio::spawn({
        let s = s.clone();
        async move { s.wait_replicated(end).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "answered before it was replicated");
    led.leader.resign();
    assert_eq!(waiting.await.unwrap(), Err(Error::NotCoordinator));
    assert_eq!(s.append_batch(batch()), Err(Error::NotCoordinator), "a deposed shard does not write");
    f.logs.close().unwrap();
}

#[tokio::test]
async fn a_write_times_out_and_min_isr_is_enforced() {
    let f = Fixture::new();
    let led = f.led(0, 2, &[1]);
    led.log.set_hw_cap(0);
    let s = f.shard(0, &led, 1, Duration::from_millis(50));
    let end = s.append_batch(batch()).unwrap().end;
    assert_eq!(s.wait_replicated(end).await, Err(Error::TimedOut));
    let strict = f.shard(0, &led, 2, Duration::from_secs(1));
    assert_eq!(strict.append_batch(batch()), Err(Error::NotEnoughReplicas));
    f.logs.close().unwrap();
}

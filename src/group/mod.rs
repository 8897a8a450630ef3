//! The group coordinator for the classic consumer-group protocol, KIP-848 consumer
//! groups (`consumer.rs`, `reconcile.rs`, `assignor.rs`, glue in `consumer_io.rs`),
//! and committed offsets. A group is one or the other: a classic `Group` whose
//! `consumer` is Some is a KIP-848 group, with its offsets in the same place.
//!
//! Sharded as in Kafka: a group lives in the `__consumer_offsets` partition its id
//! hashes to (`coordinator::partition_for`), and this node serves the groups of the
//! partitions it leads. Becoming leader of one loads its shard (replays the
//! partition in the background; meanwhile its groups get COORDINATOR_LOAD_IN_PROGRESS);
//! losing it unloads the shard (waiters get NOT_COORDINATOR); groups of shards led
//! elsewhere get NOT_COORDINATOR, and clients look the coordinator up again.
//! `state.rs`/`membership.rs` are the pure state machine of one group; this file is
//! its I/O: the registry of groups, a ticker that drives session and rebalance
//! timeouts, and the shards of the coordinator log (`store.rs`, over
//! `coordinator::shard`) that make offsets and group metadata survive a restart and
//! a failover. As in Kafka, what a client is told depends only on replicated
//! records: an offset commit, and the group record a SyncGroup's assignment (or a
//! static member's new id) is stored in, is answered once the shard's high
//! watermark passes it.
//!
//! Locking: the registry lock is held only to look a group up or insert one; each
//! group has its own mutex, held only for a synchronous state-machine call and the
//! page-cache append of what it changed, never across an await. Waiting (for other
//! members, for the leader's assignment, for fsync) happens on channels outside
//! every lock, so one slow group or member never stalls another. Time comes from
//! `tokio::time`, so tests drive timeouts with a paused clock.

pub mod assignor;
pub mod consumer;
pub mod consumer_io;
mod error;
pub mod membership;
pub mod reconcile;
pub mod offsets;
pub mod state;
pub mod store;
pub mod txn_marker;
mod view;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod consumer_tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

pub use error::{Error, Result, code_of};
pub use membership::{JoinRequest, MemberRef};
pub use offsets::{Committed, Tp};
pub use state::{Group, GroupState, JoinResult, JoinedMember, Limits, MemberProfile, Reply, SyncResult};
pub use view::{GroupDescription, GroupListing, MemberDescription};

use store::{Entry, GroupRecord, MemberRecord, Store};
use crate::coordinator::shard::{self, Shards};

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

type Groups = HashMap<String, Arc<Mutex<Group>>>;

/// What persisting a group's metadata did.
enum Persisted {
    /// Nothing to record now, or no log to record it in (an unsharded coordinator).
    Nothing,
    /// Appended below `end`: replicated once the shard's high watermark passes it.
    Appended { store: Arc<Store>, end: i64 },
    Failed(shard::Error),
}

pub struct GroupCoordinator {
    /// group id → group, for the groups of loaded shards. Held only to find or
    /// insert a group.
    groups: RwLock<Groups>,
    pub limits: Limits,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// None: one unsharded coordinator with no log (unit tests). Lock order: this
    /// before `groups`; never taken for writing while a group is locked.
    shards: Option<Shards<store::GroupLog>>,
}

impl GroupCoordinator {
    /// A coordinator for a broker: it serves no group until `set_leadership` gives it shards.
    pub fn sharded(limits: Limits, offset_metadata_max_bytes: usize) -> Arc<GroupCoordinator> {
        Self::start(GroupCoordinator { groups: RwLock::new(HashMap::new()), limits, offset_metadata_max_bytes, shards: Some(Shards::default()) })
    }

    /// A coordinator over one standalone coordinator log in `logs` (one shard,
    /// replayed now), or with no log at all (serving every group).
    pub fn open(
        logs: Option<&Arc<crate::log::manager::LogManager>>,
        limits: Limits,
        offset_metadata_max_bytes: usize,
    ) -> std::result::Result<Arc<GroupCoordinator>, crate::log::Error> {
        let mut gc = GroupCoordinator { groups: RwLock::new(HashMap::new()), limits, offset_metadata_max_bytes, shards: None };
        if let Some(logs) = logs {
            let store = Store::open(logs)?;
            gc.groups = RwLock::new(replay(&store, limits)?);
            gc.shards = Some(Shards::single(store));
        }
        Ok(Self::start(gc))
    }

    fn start(gc: GroupCoordinator) -> Arc<GroupCoordinator> {
        let gc = Arc::new(gc);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(ticker(Arc::downgrade(&gc)));
        }
        gc
    }

    /// The shard of `group_id`, if this node serves it now: NOT_COORDINATOR if it
    /// leads the group's partition no longer (or never did), COORDINATOR_LOAD_IN_PROGRESS
    /// while it is loading. Ok(None): an unsharded coordinator with no log.
    pub fn access(&self, group_id: &str) -> Result<Option<Arc<Store>>> {
        let Some(shards) = &self.shards else { return Ok(None) };
        Ok(Some(shards.access(group_id)?))
    }

    /// Whether this node serves `group_id` now (see [`GroupCoordinator::access`]).
    pub fn check(&self, group_id: &str) -> Result<()> {
        self.access(group_id).map(|_| ())
    }

    /// The loaded shard of `partition`: NOT_COORDINATOR unless this node leads it.
    fn shard(&self, partition: i32) -> Result<Arc<Store>> {
        Ok(self.shards.as_ref().ok_or(Error::NotCoordinator)?.get(partition)?)
    }

    /// The reconcile hook (`coordinator::reconciled`): load the shards this node now
    /// leads (in the background), unload those it lost or leads at a new epoch.
    pub fn set_leadership(self: &Arc<Self>, broker: &Arc<crate::broker::Broker>, l: crate::coordinator::Leadership) {
        let Some(shards) = &self.shards else { return };
        shards.set_leadership(&l, |p| self.unload(p), |p, led| {
            let (store, gc) = (Store::led(broker, p, led), self.clone());
            shard::in_background(move || gc.load(store));
        });
    }

    /// Replay a shard and start serving its groups, unless leadership moved meanwhile.
    fn load(&self, store: Store) {
        let Some(shards) = &self.shards else { return };
        shards.finish_load(store, |s| replay(s, self.limits), |s, groups| {
            tracing::info!(partition = s.partition_index, groups = groups.len(), "group coordinator shard loaded");
            self.groups.write().extend(groups);
        });
    }

    /// Drop the groups of a shard this node no longer leads; whoever waits on them
    /// is answered NOT_COORDINATOR and looks for the new coordinator.
    fn unload(&self, partition: i32) {
        let Some(shards) = &self.shards else { return };
        let n = shards.partitions();
        let gone: Vec<Arc<Mutex<Group>>> = {
            let mut groups = self.groups.write();
            let ids: Vec<String> = groups.keys().filter(|id| crate::coordinator::partition_for(id, n) == partition).cloned().collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        for g in &gone {
            for m in g.lock().members.values_mut() {
                m.fail_waiters(Error::NotCoordinator);
            }
        }
        tracing::info!(partition, groups = gone.len(), "group coordinator shard unloaded");
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.read().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        if let Some(g) = self.get(id) {
            return g;
        }
        let mut groups = self.groups.write();
        groups.entry(id.to_string()).or_insert_with(|| Arc::new(Mutex::new(Group::new(id, self.limits)))).clone()
    }

    /// Append the group's metadata if it changed and is recordable now (see
    /// [`Group::recordable`]). Called with the group locked, so records reach the log
    /// in the order the state changed.
    fn persist(&self, g: &mut Group) -> Persisted {
        if !g.take_dirty() || !g.recordable() {
            return Persisted::Nothing;
        }
        let store = match self.shards.as_ref().map(|s| s.access(&g.id)) {
            None => return Persisted::Nothing,
            Some(Ok(store)) => store,
            Some(Err(e)) => return Persisted::Failed(e),
        };
        let value = (g.state != GroupState::Dead).then(|| group_record(g));
        match store.append(&[Entry::Group { group: g.id.clone(), value }]) {
            Ok(r) => Persisted::Appended { store, end: r.end },
            Err(e) => {
                tracing::error!(group = %g.id, error = %e, "writing group metadata failed");
                Persisted::Failed(e)
            }
        }
    }

    /// Run `f` on the group, then persist what it changed. If `f` left answers that
    /// wait for the write (a stored assignment, a static member's new id), they are
    /// sent once it is replicated, by a task of their own: the group's lock is not
    /// held meanwhile, and no other group waits.
    fn with_group<T>(&self, g: &Arc<Mutex<Group>>, f: impl FnOnce(&mut Group) -> T) -> T {
        let mut gl = g.lock();
        let out = f(&mut gl);
        let persisted = self.persist(&mut gl);
        if let Some(held) = gl.take_held_write() {
            match persisted {
                // No log (an unsharded coordinator): nothing to wait for.
                Persisted::Nothing => gl.write_done(held, Ok(()), Instant::now()),
                Persisted::Failed(e) => gl.write_done(held, Err(error::metadata_write_error(e)), Instant::now()),
                Persisted::Appended { store, end } => {
                    let g = g.clone();
                    tokio::spawn(async move {
                        let stored = store.wait_replicated(end).await.map_err(error::metadata_write_error);
                        g.lock().write_done(held, stored, Instant::now());
                    });
                }
            }
        }
        out
    }

    pub fn join(&self, group_id: &str, req: JoinRequest) -> Reply<JoinResult> {
        if group_id.is_empty() {
            return Reply::Now(JoinResult::error(Error::InvalidGroupId, &req.member_id));
        }
        if let Err(e) = self.check(group_id) {
            return Reply::Now(JoinResult::error(e, &req.member_id));
        }
        let g = if req.member_id.is_empty() { Some(self.get_or_create(group_id)) } else { self.get(group_id) };
        let Some(g) = g else {
            return Reply::Now(JoinResult::error(Error::UnknownMemberId, &req.member_id));
        };
        self.with_group(&g, |g| {
            if g.consumer.as_ref().is_some_and(|c| !c.is_empty()) {
                // A KIP-848 group with members: no online downgrade.
                return Reply::Now(JoinResult::error(Error::InconsistentGroupProtocol, &req.member_id));
            }
            g.consumer = None;
            g.join(req, Instant::now())
        })
    }

    pub fn sync(
        &self,
        group_id: &str,
        who: MemberRef,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, bytes::Bytes)>,
    ) -> Reply<SyncResult> {
        if let Err(e) = self.check(group_id) {
            return Reply::Now(SyncResult::error(e));
        }
        let Some(g) = self.get(group_id) else {
            return Reply::Now(SyncResult::error(Error::UnknownMemberId));
        };
        self.with_group(&g, |g| g.sync(who, protocol, assignments, Instant::now()))
    }

    pub fn heartbeat(&self, group_id: &str, who: MemberRef) -> Result<()> {
        self.check(group_id)?;
        let g = self.get(group_id).ok_or(Error::UnknownMemberId)?;
        self.with_group(&g, |g| g.heartbeat(who, Instant::now()))
    }

    /// LeaveGroup for (member id, instance id) pairs: one result per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<Result<String>> {
        if let Err(e) = self.check(group_id) {
            return members.iter().map(|_| Err(e)).collect();
        }
        let Some(g) = self.get(group_id) else {
            return members.iter().map(|_| Err(Error::UnknownMemberId)).collect();
        };
        self.with_group(&g, |g| {
            let out: Vec<_> = members.iter().map(|(m, i)| g.leave_one(m, i.as_deref())).collect();
            g.after_leave(Instant::now());
            out
        })
    }

    /// Shutdown: answer every waiting JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE
    /// (clients look for the coordinator again), so connections drain at once.
    pub fn shutdown(&self) {
        let groups: Vec<_> = self.groups.read().values().cloned().collect();
        for g in groups {
            for m in g.lock().members.values_mut() {
                m.fail_waiters(Error::CoordinatorNotAvailable);
            }
        }
    }

    /// Drive timeouts of every group once.
    pub fn tick(&self) {
        let groups: Vec<_> = self.groups.read().values().cloned().collect();
        let now = Instant::now();
        for g in groups {
            self.with_group(&g, |g| g.tick(now));
        }
    }

    /// Expire offsets past `offsets.retention.minutes` (tombstones in the log), and
    /// drop groups left with neither members nor offsets.
    pub fn expire_offsets(&self, now_ms: i64) {
        let groups: Vec<_> = self.groups.read().values().cloned().collect();
        let now = Instant::now();
        for g in groups {
            let mut gl = g.lock();
            let expired = gl.expire_offsets(now, now_ms, self.limits.offsets_retention);
            if expired.is_empty() {
                continue;
            }
            tracing::info!(group = %gl.id, partitions = expired.len(), "committed offsets expired");
            let mut entries: Vec<Entry> = expired
                .into_iter()
                .map(|(topic, partition)| Entry::Offset { group: gl.id.clone(), topic, partition, value: None })
                .collect();
            let gone = gl.offsets.is_empty() && !gl.offsets.has_txn() && gl.member_count() == 0 && gl.pending.is_empty();
            if gone {
                gl.state = GroupState::Dead;
                entries.push(Entry::Group { group: gl.id.clone(), value: None });
            }
            if let Ok(Some(store)) = self.access(&gl.id)
                && let Err(e) = store.append(&entries)
            {
                tracing::error!(group = %gl.id, error = %e, "writing offset expiry failed");
            }
            drop(gl);
            if gone {
                // Only this (now Dead) group object: a new one may have replaced it.
                self.groups.write().retain(|_, cur| !Arc::ptr_eq(cur, &g));
            }
        }
    }

    /// A topic was deleted: every group forgets its committed offsets for it.
    pub fn delete_topic_offsets(&self, topic: &str) {
        let groups: Vec<_> = self.groups.read().values().cloned().collect();
        for g in groups {
            let mut gl = g.lock();
            let tps: Vec<Tp> = gl.offsets.iter().filter(|(tp, _)| tp.0 == topic).map(|(tp, _)| tp.clone()).collect();
            if tps.is_empty() {
                continue;
            }
            for tp in &tps {
                gl.offsets.remove(tp);
            }
            let entries: Vec<Entry> =
                tps.into_iter().map(|(topic, partition)| Entry::Offset { group: gl.id.clone(), topic, partition, value: None }).collect();
            if let Ok(Some(store)) = self.access(&gl.id)
                && let Err(e) = store.append(&entries)
            {
                tracing::error!(group = %gl.id, error = %e, "writing offset deletion failed");
            }
        }
    }

    /// OffsetCommit: check the member, append, and return a future that resolves
    /// once the commit is durable (then it is visible to OffsetFetch).
    pub fn commit_offsets(
        self: &Arc<Self>,
        group_id: &str,
        who: MemberRef,
        commits: Vec<(Tp, Committed)>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static + use<>> {
        let store = self.access(group_id)?;
        let g = match self.get(group_id) {
            Some(g) => g,
            None if who.generation < 0 => self.get_or_create(group_id),
            None => return Err(Error::IllegalGeneration),
        };
        let base = {
            let mut gl = g.lock();
            match &gl.consumer {
                Some(c) => {
                    let tps: Vec<Tp> = commits.iter().map(|(tp, _)| tp.clone()).collect();
                    c.check_commit(who.member_id, who.generation, &tps)?
                }
                None => gl.check_commit(&who)?,
            }
            let base = append_commits(store.as_deref(), &gl.id, &commits)?;
            for (tp, _) in &commits {
                gl.offsets.begin(tp);
            }
            base
        };
        Ok(async move { finish_commits(store.as_deref(), &g, base, commits).await })
    }

    /// The offsets of a committed transaction (the transaction coordinator calls this
    /// after writing its markers): no member or generation check, since they were
    /// staged by TxnOffsetCommit of a producer the coordinator already checked.
    /// Resolves once they are durable.
    pub async fn commit_txn_offsets(&self, group_id: &str, commits: Vec<(Tp, Committed)>) -> Result<()> {
        let store = self.access(group_id)?;
        let g = self.get_or_create(group_id);
        let base = {
            let mut gl = g.lock();
            let base = append_commits(store.as_deref(), &gl.id, &commits)?;
            for (tp, _) in &commits {
                gl.offsets.begin(tp);
            }
            base
        };
        finish_commits(store.as_deref(), &g, base, commits).await
    }

    /// OffsetFetch for one group: the asked partitions (None: all committed ones).
    /// Partitions with a commit still in flight are UNSTABLE_OFFSET_COMMIT when
    /// `require_stable`, signalled here as `Err(())` per partition.
    pub fn fetch_offsets(&self, group_id: &str, tps: Option<Vec<Tp>>, require_stable: bool) -> Vec<(Tp, std::result::Result<Option<Committed>, ()>)> {
        let Some(g) = self.get(group_id) else {
            return tps.unwrap_or_default().into_iter().map(|tp| (tp, Ok(None))).collect();
        };
        let g = g.lock();
        let tps = tps.unwrap_or_else(|| g.offsets.iter().map(|(tp, _)| tp.clone()).collect());
        tps.into_iter()
            .map(|tp| {
                let r = if require_stable && g.offsets.has_pending(&tp) { Err(()) } else { Ok(g.offsets.get(&tp).cloned()) };
                (tp, r)
            })
            .collect()
    }

    /// DeleteGroups of one group: only an Empty group, with its offsets.
    pub fn delete_group(&self, group_id: &str) -> Result<()> {
        self.check(group_id)?;
        let g = self.get(group_id).ok_or(Error::GroupIdNotFound)?;
        {
            let mut gl = g.lock();
            gl.mark_dead()?;
            gl.dirty = true;
            // DeleteGroups is answered at once: only writes that answers depend on hold them.
            let _ = self.persist(&mut gl);
        }
        let mut groups = self.groups.write();
        if groups.get(group_id).is_some_and(|cur| Arc::ptr_eq(cur, &g)) {
            groups.remove(group_id);
        }
        Ok(())
    }

    /// OffsetDelete: drop committed offsets the group no longer consumes.
    pub fn delete_offsets(&self, group_id: &str, tps: Vec<Tp>) -> Result<Vec<(Tp, Result<()>)>> {
        let store = self.access(group_id)?;
        let g = self.get(group_id).ok_or(Error::GroupIdNotFound)?;
        let mut gl = g.lock();
        if gl.state == GroupState::Dead {
            return Err(Error::GroupIdNotFound);
        }
        let subscribed = view::subscribed_topics(&gl);
        let mut out = Vec::with_capacity(tps.len());
        let mut tombstones = Vec::new();
        for tp in tps {
            if subscribed.contains(&tp.0) {
                out.push((tp, Err(Error::GroupSubscribedToTopic)));
                continue;
            }
            if gl.offsets.remove(&tp) {
                tombstones.push(Entry::Offset { group: gl.id.clone(), topic: tp.0.clone(), partition: tp.1, value: None });
            }
            out.push((tp, Ok(())));
        }
        if let (Some(store), false) = (&store, tombstones.is_empty()) {
            store.append(&tombstones)?;
        }
        Ok(out)
    }
}

/// Rebuild the groups of one shard from its log.
fn replay(store: &Store, limits: Limits) -> std::result::Result<Groups, crate::log::Error> {
    let mut metas: HashMap<String, GroupRecord> = HashMap::new();
    let mut count = 0u64;
    let mut groups: Groups = HashMap::new();
    store.replay(|at, e| {
        count += 1;
        match e {
            Entry::Offset { group, topic, partition, value } => {
                let g = groups.entry(group.clone()).or_insert_with(|| Arc::new(Mutex::new(Group::new(&group, limits))));
                let mut g = g.lock();
                match value {
                    Some(c) => g.offsets.apply((topic, partition), c, at),
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            Entry::Group { group, value: Some(r) } => {
                groups.entry(group.clone()).or_insert_with(|| Arc::new(Mutex::new(Group::new(&group, limits))));
                metas.insert(group, r);
            }
            Entry::Group { group, value: None } => {
                groups.remove(&group);
                metas.remove(&group);
            }
            e @ (Entry::TxnOffset { .. } | Entry::Marker { .. }) => txn_marker::replay_entry(&mut groups, limits, at, e),
        }
    })?;
    let now = Instant::now();
    for (id, r) in metas {
        if let Some(g) = groups.get(&id) {
            restore(&mut g.lock(), r, now);
        }
    }
    tracing::info!(groups = groups.len(), records = count, "group coordinator log replayed");
    Ok(groups)
}

fn append_commits(store: Option<&Store>, group: &str, commits: &[(Tp, Committed)]) -> Result<Option<i64>> {
    let Some(store) = store else { return Ok(None) };
    if commits.is_empty() {
        return Ok(None);
    }
    let entries: Vec<Entry> = commits
        .iter()
        .map(|((t, p), c)| Entry::Offset { group: group.to_string(), topic: t.clone(), partition: *p, value: Some(c.clone()) })
        .collect();
    Ok(Some(store.append(&entries)?.start))
}

/// Waits until the commits appended at `base` are replicated, then publishes them
/// (or, if that failed, drops them): they become visible to OffsetFetch only now.
async fn finish_commits(store: Option<&Store>, g: &Mutex<Group>, base: Option<i64>, commits: Vec<(Tp, Committed)>) -> Result<()> {
    let done = match (store, base) {
        (Some(store), Some(base)) => store.wait_replicated(base + commits.len() as i64).await.map_err(Error::from),
        _ => Ok(()),
    };
    let mut gl = g.lock();
    for (i, (tp, c)) in commits.into_iter().enumerate() {
        let at = base.map_or(i64::MAX, |b| b + i as i64);
        gl.offsets.finish(tp, done.is_ok().then_some((c, at)));
    }
    done
}

async fn ticker(gc: Weak<GroupCoordinator>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_expiry = Instant::now();
    loop {
        every.tick().await;
        let Some(gc) = gc.upgrade() else { return };
        gc.tick();
        if Instant::now() >= next_expiry {
            gc.expire_offsets(crate::log::system_time_ms());
            next_expiry = Instant::now() + gc.limits.offsets_retention_check_interval;
        }
    }
}

fn group_record(g: &Group) -> GroupRecord {
    GroupRecord {
        protocol_type: g.protocol_type.clone(),
        generation: g.generation,
        protocol_name: g.protocol_name.clone(),
        leader: g.leader.clone(),
        members: g
            .members()
            .map(|m| MemberRecord { id: m.id.clone(), profile: m.profile.clone(), assignment: m.assignment.clone() })
            .collect(),
    }
}

/// Rebuild a group from its last metadata record. A group that had members comes
/// back Stable: its members' heartbeats carry on, or their sessions expire.
fn restore(g: &mut Group, r: GroupRecord, now: Instant) {
    g.generation = r.generation;
    g.protocol_type = r.protocol_type;
    g.protocol_name = r.protocol_name;
    g.leader = r.leader;
    g.state = if r.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    if r.members.is_empty() && g.protocol_type.is_some() {
        // When it became Empty is not recorded: count from the restart (keeps offsets longer).
        g.empty_since = Some(now);
    }
    for m in r.members {
        g.restore_member(
            state::Member {
                id: m.id,
                profile: m.profile,
                assignment: m.assignment,
                joined_seq: 0,
                join_waiter: None,
                sync_waiter: None,
                session_deadline: now,
            },
            now,
        );
    }
}

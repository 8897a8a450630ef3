//! Free space in the log dir: appends stop short of a full disk.
//!
//! A full disk must not stop the broker from freeing space or from keeping its books.
//! DeleteRecords and retention write the log start checkpoint (a new file renamed over
//! the old one), a roll writes a producer snapshot and the recovery point is
//! checkpointed every second, and index entries land in pages of sparse mmap'd files,
//! where a full disk is a SIGBUS rather than an error. So appends — the only writes that
//! grow without bound — are refused (KAFKA_STORAGE_ERROR) once they would leave less
//! than a reserve free, and that headroom stays for everything else. Without it, whether
//! a DeleteRecords on a full disk could write its checkpoint depended on how many bytes
//! the last refused batch happened to leave.
//!
//! An `fstatvfs` per append would put a syscall on the hot path, so the guard keeps a
//! budget of bytes that may be appended before it looks again, set to half the headroom
//! above the reserve at each look: looks come more often only as the disk fills, and
//! space freed by retention is seen at the next one. Another process filling the disk
//! between looks still gets the write's own ENOSPC (the append is then cut back).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::{Error, Result};

/// The reserve is this fraction of the filesystem's size...
const RESERVE_FRACTION: u64 = 64;
/// ...but at least this (a checkpoint, a snapshot and some index pages per partition
/// written at once fit, even on a tiny disk)...
const MIN_RESERVE_BYTES: u64 = 256 << 10;
/// ...and at most this (a big disk need not idle gigabytes).
const MAX_RESERVE_BYTES: u64 = 64 << 20;

type FreeProbe = Box<dyn Fn() -> io::Result<u64> + Send + Sync>;

/// Admission of appends against the free space of one filesystem.
pub struct DiskSpace {
    reserve_bytes: u64,
    /// Bytes that may still be appended before the next look; at or below zero, look.
    budget: AtomicI64,
    /// Set while appends are refused: the operator hears once when it starts and ends.
    refusing: AtomicBool,
    free_bytes: FreeProbe,
}

impl DiskSpace {
    /// The guard for the filesystem holding `dir` (an open directory).
    pub fn for_dir(dir: File) -> io::Result<DiskSpace> {
        let total = statvfs(&dir)?.total_bytes;
        let reserve = (total / RESERVE_FRACTION).clamp(MIN_RESERVE_BYTES, MAX_RESERVE_BYTES);
        Ok(DiskSpace::new(reserve, Box::new(move || Ok(statvfs(&dir)?.free_bytes))))
    }

    fn new(reserve_bytes: u64, free_bytes: FreeProbe) -> DiskSpace {
        DiskSpace { reserve_bytes, budget: AtomicI64::new(0), refusing: AtomicBool::new(false), free_bytes }
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Admits an append of `bytes`, or refuses it with [`Error::DiskFull`] when it would
    /// leave less than the reserve free.
    pub fn admit(&self, bytes: usize) -> Result<()> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        if self.budget.fetch_sub(bytes, Ordering::Relaxed) >= bytes {
            return Ok(());
        }
        let free = (self.free_bytes)()?;
        let headroom = i64::try_from(free.saturating_sub(self.reserve_bytes)).unwrap_or(i64::MAX);
        if headroom < bytes {
            self.budget.store(0, Ordering::Relaxed);
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(free_bytes = free, reserve_bytes = self.reserve_bytes, "log dir nearly full: refusing appends");
            }
            return Err(Error::DiskFull { free_bytes: free, reserve_bytes: self.reserve_bytes });
        }
        // Concurrent appenders may each have looked and stored; any of their budgets is
        // at most half of a headroom seen just now, so together they cannot pass it.
        self.budget.store((headroom - bytes) / 2, Ordering::Relaxed);
        if self.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(free_bytes = free, "log dir has room again: appends resume");
        }
        Ok(())
    }
}

struct FsSpace {
    total_bytes: u64,
    /// Free to unprivileged users: root's reserved blocks are not counted on.
    free_bytes: u64,
}

fn statvfs(dir: &File) -> io::Result<FsSpace> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: the fd is open for the life of `dir`, and fstatvfs writes a whole statvfs
    // into `st` when it returns 0.
    let st = unsafe {
        if libc::fstatvfs(dir.as_raw_fd(), st.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        st.assume_init()
    };
    let block = st.f_frsize as u64;
    Ok(FsSpace { total_bytes: st.f_blocks as u64 * block, free_bytes: st.f_bavail as u64 * block })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn guard(reserve: u64, free: &Arc<AtomicU64>, looks: &Arc<AtomicU64>) -> DiskSpace {
        let (free, looks) = (free.clone(), looks.clone());
        DiskSpace::new(
            reserve,
            Box::new(move || {
                looks.fetch_add(1, Ordering::Relaxed);
                Ok(free.load(Ordering::Relaxed))
            }),
        )
    }

    #[test]
    fn appends_stop_at_the_reserve_and_resume_when_space_is_freed() {
        let free = Arc::new(AtomicU64::new(1 << 20));
        let looks = Arc::new(AtomicU64::new(0));
        let space = guard(256 << 10, &free, &looks);

        // Append 1 KiB at a time, the probe following what was written.
        let mut appended = 0u64;
        while space.admit(1024).is_ok() {
            appended += 1024;
            free.fetch_sub(1024, Ordering::Relaxed);
            assert!(appended <= 1 << 20, "never refused");
        }
        assert_eq!(appended, (1 << 20) - (256 << 10), "exactly the reserve is left");
        // Half the headroom per look: logarithmically many looks, not one per append.
        let looks_to_fill = looks.load(Ordering::Relaxed);
        assert!(looks_to_fill <= 16, "{looks_to_fill} looks for 768 appends");
        assert!(matches!(space.admit(1), Err(Error::DiskFull { free_bytes, reserve_bytes: 262_144 }) if free_bytes == 256 << 10));

        // Refused appends look every time, so freed space is seen at once.
        free.fetch_add(4096, Ordering::Relaxed);
        assert!(space.admit(4096).is_ok());
        free.fetch_sub(4096, Ordering::Relaxed);
        assert!(space.admit(1).is_err());
    }

    #[test]
    fn the_reserve_scales_with_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::for_dir(File::open(dir.path()).unwrap()).unwrap();
        assert!((MIN_RESERVE_BYTES..=MAX_RESERVE_BYTES).contains(&space.reserve_bytes()));
        assert!(space.admit(1).is_ok(), "a test machine has more than the reserve free");
    }
}

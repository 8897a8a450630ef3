//! DescribeLogDirs (35): the one log directory of this broker, its partitions' sizes,
//! and (v4) the volume's total and usable bytes (`statvfs`). A partition's size is the
//! bytes of its segments; its offset lag is 0 (this broker leads every partition), and
//! there are no "future" replicas (no moves between directories).

use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::metadata::TopicImage;

/// Kafka's value for a volume size it cannot learn.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn handle(ctx: &RequestContext, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    // None: every topic. Unknown topics and partitions are left out, as Kafka does.
    let wanted: Vec<(&TopicImage, Vec<i32>)> = match &req.topics {
        None => image.topics.values().map(|t| (&**t, (0..t.partitions.len() as i32).collect())).collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| image.topic(&t.topic).map(|ti| (&**ti, t.partitions.clone())))
            .collect(),
    };
    let mut topics = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut out = DescribeLogDirsTopic::default().with_name(TopicName(str_bytes(&topic.name)));
        for index in partitions {
            let Ok(Some(p)) = ctx.broker.partition(topic, index) else { continue };
            let Ok(size_bytes) = p.size_bytes() else { continue };
            out.partitions.push(DescribeLogDirsPartition::default().with_partition_index(index).with_partition_size(size_bytes as i64).with_offset_lag(0));
        }
        if !out.partitions.is_empty() {
            topics.push(out);
        }
    }
    let dir = ctx.broker.logs.dir();
    let mut result = DescribeLogDirsResult::default().with_log_dir(str_bytes(&dir.display().to_string())).with_topics(topics);
    if v >= 4 {
        let (total_bytes, usable_bytes) = volume_bytes(dir).unwrap_or((UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES));
        result.total_bytes = total_bytes;
        result.usable_bytes = usable_bytes;
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, available to unprivileged users) bytes of the file system holding `dir`.
fn volume_bytes(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` points to writable memory of
    // the right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so statvfs initialised `st`.
    let st = unsafe { st.assume_init() };
    let block_bytes = st.f_frsize as i64;
    Some((st.f_blocks as i64 * block_bytes, st.f_bavail as i64 * block_bytes))
}

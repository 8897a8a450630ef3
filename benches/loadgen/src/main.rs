//! The librdkafka load generator of `benches/run.py`: peak produce and catch-up read.
//!
//! ```text
//! sluice-loadgen produce BOOTSTRAP TOPIC RECORDS MAX_S [BATCH_BYTES]
//! sluice-loadgen consume BOOTSTRAP TOPIC TIMEOUT_S [MAX_RECORDS]
//! ```
//!
//! Both print one JSON line (the fields `benches/run.py` reads) and exit non-zero when the
//! run was incomplete or saw errors.
//!
//! Why a compiled client: the load generator has one core (the broker has the other), and
//! a client that runs out of it first measures itself, not the broker. Python's
//! confluent-kafka (the same librdkafka) spent most of that core creating one Python object
//! per record, near 320 k records/s; here the per-record cost is librdkafka's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::bindings::{
    rd_kafka_consume_batch_queue, rd_kafka_message_destroy, rd_kafka_message_t,
    rd_kafka_queue_destroy, rd_kafka_queue_get_consumer, rd_kafka_queue_t,
};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const MIB: f64 = (1 << 20) as f64;
const RECORD_BYTES: usize = 1024;
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Records taken from librdkafka's queue per call in the catch-up read.
const BATCH: usize = 10_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.first().map(String::as_str) {
        Some("produce") if (5..=6).contains(&args.len()) => produce(&args[1..]),
        Some("consume") if (4..=5).contains(&args.len()) => consume(&args[1..]),
        _ => {
            eprintln!(
                "usage: sluice-loadgen produce BOOTSTRAP TOPIC RECORDS MAX_S [BATCH_BYTES]\n       \
                 sluice-loadgen consume BOOTSTRAP TOPIC TIMEOUT_S [MAX_RECORDS]"
            );
            return ExitCode::from(2);
        }
    };
    match run {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("{{\"error\": {}}}", json_str(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, Box<dyn std::error::Error>> {
    s.parse().map_err(|_| format!("{what}: not a number: {s}").into())
}

/// Counts failed deliveries; librdkafka reports only those (`delivery.report.only.error`).
#[derive(Default)]
struct Deliveries {
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Peak produce: 1 KiB records, acks=all, idempotent, linger 5 ms, librdkafka's other
/// defaults (its batch.size is 1,000,000 bytes; BATCH_BYTES overrides it, as the kill -9
/// restart fill does to store Java-sized batches). Produces until RECORDS were handed over
/// or MAX_S passed, then flushes (at most 60 s more).
fn produce(args: &[String]) -> Result<bool, Box<dyn std::error::Error>> {
    let (bootstrap, topic) = (&args[0], &args[1]);
    let records: u64 = arg(&args[2], "RECORDS")?;
    let max_s: f64 = arg(&args[3], "MAX_S")?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("delivery.report.only.error", "true");
    if let Some(batch) = args.get(4) {
        config.set("batch.size", arg::<u64>(batch, "BATCH_BYTES")?.to_string());
    }
    let producer: BaseProducer<Deliveries> = config.create_with_context(Deliveries::default())?;
    producer.client().fetch_metadata(Some(topic), METADATA_TIMEOUT)?; // before the clock

    let value = vec![0u8; RECORD_BYTES];
    let mut sent: u64 = 0;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(max_s);
    while sent < records {
        match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&value[..])) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // librdkafka's local queue is full: let it drain, then serve callbacks.
                // (Not poll(1 ms): rdkafka's poll loops on the clock until its deadline,
                // which cost this client half its core in clock_gettime.)
                std::thread::sleep(Duration::from_millis(1));
                producer.poll(Duration::ZERO);
                continue;
            }
            Err((e, _)) => return Err(e.into()),
        }
        if sent % 2000 == 0 {
            producer.poll(Duration::ZERO);
            if Instant::now() > deadline {
                break;
            }
        }
    }
    // A flush that times out leaves the rest in flight; they are counted, not hidden.
    let _ = producer.flush(Duration::from_secs(60));
    let secs = t0.elapsed().as_secs_f64();
    let left = producer.in_flight_count().max(0) as u64;
    let ctx = producer.context();
    let errors = ctx.errors.load(Ordering::Relaxed);
    let first_error = ctx.first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    let acked = sent.saturating_sub(left + errors);
    println!(
        "{{\"records\": {acked}, \"handed_over\": {sent}, \"unflushed\": {left}, \
         \"errors\": {errors}, \"first_error\": {}, \"seconds\": {secs}, \
         \"records_per_s\": {}, \"mib_per_s\": {}, \"client\": \"rust-rdkafka\"}}",
        first_error.as_deref().map_or("null".into(), json_str),
        acked as f64 / secs,
        acked as f64 * RECORD_BYTES as f64 / secs / MIB,
    );
    Ok(errors == 0 && left == 0)
}

/// Catch-up read: assign() of every partition of TOPIC from its log start, up to the end
/// offsets taken at the start (or MAX_RECORDS, so that two brokers serve the same count),
/// no group membership (librdkafka insists on a group.id; assign() never joins it and
/// nothing is committed). Fetch limits are raised so that librdkafka's defaults are not
/// what runs out first: max.partition.fetch.bytes 8 MiB, and up to 1 GiB / 1,000,000
/// records prefetched per partition. fetch.max.bytes is 16 MiB, below librdkafka's 50 MiB
/// default: glibc serves allocations under 32 MiB from its heap, larger ones from fresh
/// mmap()s, and page-faulting in a new 50 MiB response buffer per fetch cost this client a
/// quarter of its core. check.crcs stays at its default (false), as the Java client's
/// check.crcs=true would cost CPU in the client only.
fn consume(args: &[String]) -> Result<bool, Box<dyn std::error::Error>> {
    let (bootstrap, topic) = (&args[0], &args[1]);
    let timeout_s: f64 = arg(&args[2], "TIMEOUT_S")?;
    let max_records: Option<i64> = args.get(3).map(|s| arg(s, "MAX_RECORDS")).transpose()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-catch-up-rdkafka")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", (16 << 20).to_string())
        .set("max.partition.fetch.bytes", (8 << 20).to_string())
        .set("receive.message.max.bytes", ((16 << 20) + (1 << 20)).to_string())
        .set("queued.max.messages.kbytes", (1 << 20).to_string())
        .set("queued.min.messages", "1000000")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let md = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic.as_str())
        .ok_or_else(|| format!("topic {topic} not in the metadata"))?;
    if let Some(e) = md.error() {
        return Err(format!("topic {topic}: {e:?}").into());
    }
    let mut partitions: Vec<i32> = md.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    let mut assignment = TopicPartitionList::new();
    let mut expected: i64 = 0;
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        expected += high - low;
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    let target = max_records.map_or(expected, |m| m.min(expected));
    consumer.assign(&assignment)?;

    let (mut records, mut bytes, mut errors, mut keyed) = (0i64, 0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    let queue = ConsumerQueue::of(&consumer);
    let mut batch: Vec<*mut rd_kafka_message_t> = vec![std::ptr::null_mut(); BATCH];
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(timeout_s);
    let (mut t_first, mut t_last) = (None, t0);
    while records < target && Instant::now() < deadline {
        // Up to BATCH records per call, from the queue librdkafka's fetcher fills; the
        // safe per-record poll() costs a clock read and an event per record.
        let n = queue.consume_batch(&mut batch, 500);
        for &m in &batch[..n] {
            // SAFETY: librdkafka handed us n valid messages, each destroyed exactly once.
            let msg = unsafe { &*m };
            if msg.err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                keyed += u64::from(msg.key_len > 0);
                bytes += (msg.key_len + msg.len) as u64;
                records += 1;
            } else {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{:?}", msg.err));
            }
            unsafe { rd_kafka_message_destroy(m) };
        }
        if n > 0 {
            let now = Instant::now();
            t_first.get_or_insert(now);
            t_last = now;
        }
    }
    drop(queue);
    let secs = (t_last - t0).as_secs_f64();
    let complete = records >= target;
    let rate = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    println!(
        "{{\"records\": {records}, \"expected\": {expected}, \"target\": {target}, \
         \"bytes\": {bytes}, \"keyed_records\": {keyed}, \"seconds\": {secs}, \
         \"errors\": {errors}, \"first_records_s\": {}, \"first_error\": {}, \
         \"complete\": {complete}, \"records_per_s\": {}, \"mib_per_s\": {}, \
         \"client\": \"rust-rdkafka\"}}",
        t_first.map_or("null".into(), |t| (t - t0).as_secs_f64().to_string()),
        first_error.as_deref().map_or("null".into(), json_str),
        rate(records as f64),
        rate(bytes as f64) / MIB,
    );
    Ok(complete && errors == 0)
}

/// librdkafka's consumer queue (where an assign()ed consumer's fetched records land),
/// read in batches through the C API, which the rdkafka crate does not wrap.
struct ConsumerQueue(*mut rd_kafka_queue_t);

impl ConsumerQueue {
    fn of(consumer: &BaseConsumer) -> Self {
        // SAFETY: the client outlives the queue handle (dropped before the consumer).
        let q = unsafe { rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        assert!(!q.is_null(), "a consumer with a group.id has a consumer queue");
        ConsumerQueue(q)
    }

    /// Fills the front of `out`; returns how many messages it holds (0 on timeout).
    fn consume_batch(&self, out: &mut [*mut rd_kafka_message_t], timeout_ms: i32) -> usize {
        // SAFETY: out has room for out.len() pointers; the queue handle is live.
        let n = unsafe { rd_kafka_consume_batch_queue(self.0, timeout_ms, out.as_mut_ptr(), out.len()) };
        usize::try_from(n).unwrap_or(0)
    }
}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_consumer and is released once.
        unsafe { rd_kafka_queue_destroy(self.0) };
    }
}

/// A JSON string literal (error messages may hold quotes or backslashes).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

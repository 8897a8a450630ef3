//! Bounds check that runs on a request body before `kafka-protocol` decodes it.
//!
//! The crate's array decoder calls `Vec::with_capacity(n)` with `n` straight off
//! the wire, before checking that the bytes exist (kafka-protocol-rs issue #200,
//! cf. CVE-2022-34917), so a tiny frame claiming 2^31 elements aborts the process.
//! [`check_body`] walks the body with the request schema of that API and version
//! (see [`schema`]) and checks every length prefix against the bytes that remain,
//! without allocating. A body that passes has every array fully present, so the
//! crate's allocations are bounded by the frame size.
//!
//! The walk reads exactly what the crate reads, in the same order: inline fields,
//! then (flexible versions) the tagged-field section of each struct, where known
//! tags are read in place (the crate ignores their size prefix) and unknown tags
//! are skipped by size. It is stricter than the crate where Kafka is too: null
//! only where the schema allows it, compact strings at most 0x7fff bytes, 32-bit
//! varints at most 5 bytes with no overflowing high bits. It also insists that a
//! known tagged field's declared size matches what its value takes.
//!
//! Trailing bytes after the body are allowed, as in Kafka: `RequestContext` hands
//! the buffer to the generated `read`, which never checks for leftovers.

mod schema;

use std::ops::RangeInclusive;

use schema::{Field, MESSAGES, Message, Ty};

/// Why a request body was rejected before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("no request schema for api key {api_key} version {api_version}")]
    UnknownApi { api_key: i16, api_version: i16 },
    #[error("{field}: array claims {count} elements but only {remaining} bytes remain")]
    ArrayTooLong {
        field: &'static str,
        count: u64,
        remaining: usize,
    },
    #[error("{field}: needs {needed} bytes but only {remaining} remain")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("{field}: malformed varint")]
    BadVarint { field: &'static str },
    #[error("{field}: null is not allowed in this version")]
    UnexpectedNull { field: &'static str },
    #[error("{field}: invalid length or marker {len}")]
    InvalidLength { field: &'static str, len: i64 },
    #[error("{field}: tagged field declares {declared} bytes but its value takes {actual}")]
    TaggedSizeMismatch {
        field: &'static str,
        declared: usize,
        actual: usize,
    },
}

/// Checks that `body` (the request bytes after the request header) is a
/// structurally complete request of `api_key`/`api_version`: every length and
/// count fits in the bytes that remain. Trailing bytes are allowed.
pub fn check_body(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), BoundsError> {
    walk(api_key, api_version, body).map(|_| ())
}

/// The versions of `api_key` that [`check_body`] has a schema for.
pub fn covered_versions(api_key: i16) -> Option<RangeInclusive<i16>> {
    find(api_key).map(|m| m.versions.0..=m.versions.1)
}

/// Like [`check_body`], returning how many bytes the request body takes.
pub(crate) fn walk(api_key: i16, api_version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let unknown = BoundsError::UnknownApi {
        api_key,
        api_version,
    };
    let msg = find(api_key).ok_or(unknown.clone())?;
    if !within(msg.versions, api_version) {
        return Err(unknown);
    }
    let mut w = Walker {
        c: Cursor::new(body),
        version: api_version,
        flexible: api_version >= msg.flexible_from,
    };
    // Errors in the top-level tagged section name the message.
    w.structure(msg.fields, msg.name)?;
    Ok(w.c.pos)
}

fn find(api_key: i16) -> Option<&'static Message> {
    MESSAGES.iter().find(|m| m.api_key == api_key)
}

fn within((lo, hi): (i16, i16), v: i16) -> bool {
    lo <= v && v <= hi
}

impl Field {
    fn tagged_in(&self, v: i16) -> Option<u32> {
        self.tag.filter(|&(_, r)| within(r, v)).map(|(t, _)| t)
    }
    fn inline_in(&self, v: i16) -> bool {
        within(self.versions, v) && self.tagged_in(v).is_none()
    }
    fn nullable_in(&self, v: i16) -> bool {
        self.nullable.is_some_and(|r| within(r, v))
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offsets and lengths of array counts read so far (tests splice them).
    #[cfg(test)]
    counts: Vec<(usize, usize)>,
    /// Known tagged fields walked so far.
    #[cfg(test)]
    known_tags: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            #[cfg(test)]
            counts: Vec::new(),
            #[cfg(test)]
            known_tags: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize, field: &'static str) -> Result<(), BoundsError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(BoundsError::Truncated {
                field,
                needed: n,
                remaining,
            });
        }
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BoundsError> {
        let start = self.pos;
        self.skip(N, field)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[start..self.pos]);
        Ok(out)
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, BoundsError> {
        self.array::<1>(field).map(i8::from_be_bytes)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, BoundsError> {
        self.array::<2>(field).map(i16::from_be_bytes)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, BoundsError> {
        self.array::<4>(field).map(i32::from_be_bytes)
    }

    /// Unsigned 32-bit varint: at most 5 bytes, the fifth carrying only 4 bits.
    fn uvarint(&mut self, field: &'static str) -> Result<u32, BoundsError> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.array::<1>(field)?[0];
            if i == 4 && b > 0x0f {
                return Err(BoundsError::BadVarint { field });
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        unreachable!("the fifth byte either ends the varint or is rejected")
    }
}

struct Walker<'a> {
    c: Cursor<'a>,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    /// One struct: its inline fields, then its tagged-field section if flexible.
    fn structure(
        &mut self,
        fields: &'static [Field],
        tags_name: &'static str,
    ) -> Result<(), BoundsError> {
        let v = self.version;
        for f in fields.iter().filter(|f| f.inline_in(v)) {
            self.value(f.name, f.ty, f.nullable_in(v))?;
        }
        if self.flexible {
            self.tagged_section(fields, tags_name)?;
        }
        Ok(())
    }

    fn tagged_section(
        &mut self,
        fields: &'static [Field],
        name: &'static str,
    ) -> Result<(), BoundsError> {
        let count = self.c.uvarint(name)?;
        // Each entry takes at least two bytes: its tag and its size.
        let remaining = self.c.remaining();
        if u64::from(count) * 2 > remaining as u64 {
            return Err(BoundsError::ArrayTooLong {
                field: name,
                count: count.into(),
                remaining,
            });
        }
        for _ in 0..count {
            let tag = self.c.uvarint(name)?;
            let size = self.c.uvarint(name)? as usize;
            let remaining = self.c.remaining();
            if size > remaining {
                return Err(BoundsError::Truncated {
                    field: name,
                    needed: size,
                    remaining,
                });
            }
            match fields
                .iter()
                .find(|f| f.tagged_in(self.version) == Some(tag))
            {
                Some(f) => {
                    #[cfg(test)]
                    {
                        self.c.known_tags += 1;
                    }
                    let start = self.c.pos;
                    self.value(f.name, f.ty, f.nullable_in(self.version))?;
                    let actual = self.c.pos - start;
                    if actual != size {
                        return Err(BoundsError::TaggedSizeMismatch {
                            field: f.name,
                            declared: size,
                            actual,
                        });
                    }
                }
                None => self.c.skip(size, name)?,
            }
        }
        Ok(())
    }

    fn value(&mut self, field: &'static str, ty: Ty, nullable: bool) -> Result<(), BoundsError> {
        match ty {
            Ty::Int8 | Ty::Bool => self.c.skip(1, field),
            Ty::Int16 | Ty::Uint16 => self.c.skip(2, field),
            Ty::Int32 | Ty::Uint32 => self.c.skip(4, field),
            Ty::Int64 | Ty::Float64 => self.c.skip(8, field),
            Ty::Uuid => self.c.skip(16, field),
            Ty::String => match self.length(field, nullable, true)? {
                Some(n) => self.c.skip(n, field),
                None => Ok(()),
            },
            Ty::Bytes | Ty::Records => match self.length(field, nullable, false)? {
                Some(n) => self.c.skip(n, field),
                None => Ok(()),
            },
            Ty::ArrayOf(elem) => {
                for _ in 0..self.count(field, nullable)? {
                    self.value(field, *elem, false)?;
                }
                Ok(())
            }
            Ty::Array(fields) => {
                for _ in 0..self.count(field, nullable)? {
                    self.structure(fields, field)?;
                }
                Ok(())
            }
            Ty::Struct(fields) => {
                if nullable {
                    // The crate decodes the struct iff the marker is 1; Kafka
                    // treats negative as null. Accept only the canonical -1 / 1.
                    match self.c.i8(field)? {
                        -1 => return Ok(()),
                        1 => {}
                        m => {
                            return Err(BoundsError::InvalidLength {
                                field,
                                len: m.into(),
                            });
                        }
                    }
                }
                self.structure(fields, field)
            }
        }
    }

    /// A string (`short = true`) or bytes length prefix; `None` means null.
    fn length(
        &mut self,
        field: &'static str,
        nullable: bool,
        short: bool,
    ) -> Result<Option<usize>, BoundsError> {
        let len: i64 = if self.flexible {
            i64::from(self.c.uvarint(field)?) - 1
        } else if short {
            self.c.i16(field)?.into()
        } else {
            self.c.i32(field)?.into()
        };
        match len {
            -1 if nullable => Ok(None),
            -1 => Err(BoundsError::UnexpectedNull { field }),
            // Kafka rejects compact strings longer than a classic string can be.
            n if n < -1 || (short && n > i64::from(i16::MAX)) => {
                Err(BoundsError::InvalidLength { field, len: n })
            }
            n => Ok(Some(n as usize)),
        }
    }

    /// An array count, checked against the remaining bytes; null reads as 0.
    fn count(&mut self, field: &'static str, nullable: bool) -> Result<u64, BoundsError> {
        let _start = self.c.pos;
        let count: i64 = if self.flexible {
            i64::from(self.c.uvarint(field)?) - 1
        } else {
            self.c.i32(field)?.into()
        };
        #[cfg(test)]
        self.c.counts.push((_start, self.c.pos - _start));
        match count {
            -1 if nullable => Ok(0),
            -1 => Err(BoundsError::UnexpectedNull { field }),
            n if n < -1 => Err(BoundsError::InvalidLength { field, len: n }),
            n => {
                // Every element takes at least one byte.
                let remaining = self.c.remaining();
                if n as u64 > remaining as u64 {
                    return Err(BoundsError::ArrayTooLong {
                        field,
                        count: n as u64,
                        remaining,
                    });
                }
                Ok(n as u64)
            }
        }
    }
}

#[cfg(test)]
mod testgen;

#[cfg(test)]
mod tests {
    use super::schema::MAX;
    use super::testgen::Gen;
    use super::*;
    use bytes::{Buf, Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use proptest::prelude::*;

    /// Maps api keys to the crate's request types: decode-then-re-encode and
    /// encoding of `Default::default()`.
    macro_rules! crate_requests {
        ($($key:literal => $ty:ident,)*) => {
            const CRATE_KEYS: &[i16] = &[$($key),*];

            /// Decodes with the crate; returns its re-encoding and the bytes it left.
            fn crate_roundtrip(key: i16, v: i16, body: &[u8]) -> Result<(Vec<u8>, usize), String> {
                let mut b = Bytes::copy_from_slice(body);
                let mut out = BytesMut::new();
                match key {
                    $($key => {
                        let r = $ty::decode(&mut b, v).map_err(|e| format!("{e:#}"))?;
                        r.encode(&mut out, v).map_err(|e| format!("{e:#}"))?;
                    })*
                    _ => panic!("no crate type for key {key}"),
                }
                Ok((out.to_vec(), b.remaining()))
            }

            fn crate_default(key: i16, v: i16) -> Vec<u8> {
                let mut out = BytesMut::new();
                match key {
                    $($key => $ty::default().encode(&mut out, v).unwrap(),)*
                    _ => panic!("no crate type for key {key}"),
                }
                out.to_vec()
            }
        };
    }

    crate_requests! {
        0 => ProduceRequest, 1 => FetchRequest, 2 => ListOffsetsRequest, 3 => MetadataRequest,
        8 => OffsetCommitRequest, 9 => OffsetFetchRequest, 10 => FindCoordinatorRequest,
        11 => JoinGroupRequest, 12 => HeartbeatRequest, 13 => LeaveGroupRequest,
        14 => SyncGroupRequest, 15 => DescribeGroupsRequest, 16 => ListGroupsRequest,
        18 => ApiVersionsRequest, 19 => CreateTopicsRequest, 20 => DeleteTopicsRequest,
        21 => DeleteRecordsRequest, 22 => InitProducerIdRequest, 23 => OffsetForLeaderEpochRequest,
        24 => AddPartitionsToTxnRequest, 25 => AddOffsetsToTxnRequest, 26 => EndTxnRequest,
        27 => WriteTxnMarkersRequest, 28 => TxnOffsetCommitRequest, 32 => DescribeConfigsRequest, 33 => AlterConfigsRequest,
        35 => DescribeLogDirsRequest, 37 => CreatePartitionsRequest, 42 => DeleteGroupsRequest,
        43 => ElectLeadersRequest, 44 => IncrementalAlterConfigsRequest,
        45 => AlterPartitionReassignmentsRequest, 46 => ListPartitionReassignmentsRequest,
        47 => OffsetDeleteRequest, 55 => DescribeQuorumRequest,
        60 => DescribeClusterRequest, 61 => DescribeProducersRequest,
        65 => DescribeTransactionsRequest, 66 => ListTransactionsRequest,
        68 => ConsumerGroupHeartbeatRequest, 69 => ConsumerGroupDescribeRequest,
        75 => DescribeTopicPartitionsRequest,
        80 => AddRaftVoterRequest, 81 => RemoveRaftVoterRequest,
    }

    fn all_versions() -> Vec<(i16, i16)> {
        MESSAGES
            .iter()
            .flat_map(|m| (m.versions.0..=m.versions.1).map(move |v| (m.api_key, v)))
            .collect()
    }

    /// Walks a valid body, returning the cursor's record of what it read.
    fn trace(key: i16, v: i16, body: &[u8]) -> Cursor<'_> {
        let m = find(key).unwrap();
        let mut w = Walker {
            c: Cursor::new(body),
            version: v,
            flexible: v >= m.flexible_from,
        };
        w.structure(m.fields, m.name).unwrap();
        w.c
    }

    /// The table covers exactly what the crate implements, for every requested API.
    #[test]
    fn coverage_matches_crate() {
        let keys: Vec<i16> = MESSAGES.iter().map(|m| m.api_key).collect();
        assert_eq!(keys, CRATE_KEYS);
        assert_eq!(covered_versions(0), Some(3..=13));
        assert_eq!(covered_versions(1), Some(4..=18));
        assert_eq!(covered_versions(4), None);
        assert_eq!(
            check_body(0, 2, &[0; 64]),
            Err(BoundsError::UnknownApi {
                api_key: 0,
                api_version: 2
            })
        );
        assert!(check_body(3, 14, &[0; 64]).is_err());
        assert!(check_body(999, 0, &[]).is_err());
        for m in MESSAGES {
            let (lo, hi) = m.versions;
            assert!(lo <= hi && hi < MAX, "{}", m.name);
        }
    }

    /// Every array element takes at least one byte in every version, which is
    /// what bounds the element loop by the remaining bytes.
    #[test]
    fn no_empty_elements() {
        fn nonempty(fields: &[Field], v: i16, flexible: bool) -> bool {
            flexible || fields.iter().any(|f| f.inline_in(v))
        }
        fn check(fields: &[Field], v: i16, flexible: bool, name: &str) {
            for f in fields.iter().filter(|f| within(f.versions, v)) {
                if let Ty::Array(sub) | Ty::Struct(sub) = f.ty {
                    assert!(nonempty(sub, v, flexible), "{name}.{} v{v}", f.name);
                    check(sub, v, flexible, name);
                }
            }
        }
        for (key, v) in all_versions() {
            let m = find(key).unwrap();
            check(m.fields, v, v >= m.flexible_from, m.name);
        }
    }

    /// The crate's own encodings of default requests are accepted exactly.
    #[test]
    fn accepts_crate_default_requests() {
        for (key, v) in all_versions() {
            let body = crate_default(key, v);
            assert_eq!(walk(key, v, &body), Ok(body.len()), "key {key} v{v}");
        }
    }

    /// Crate-built requests with non-empty nested arrays, strings, records,
    /// topic ids and unknown tagged fields are accepted exactly.
    #[test]
    fn accepts_crate_filled_requests() {
        let s = |x: &str| StrBytes::from_string(x.to_owned());
        let tags = |v: i16, flex: i16| {
            let mut m = std::collections::BTreeMap::new();
            if v >= flex {
                m.insert(7, Bytes::from_static(b"tag"));
            }
            m
        };
        for v in 3..=13 {
            let part = |i| {
                produce_request::PartitionProduceData::default()
                    .with_index(i)
                    .with_records(Some(Bytes::from_static(b"not really a batch")))
                    .with_unknown_tagged_fields(tags(v, 9))
            };
            let mut topic = produce_request::TopicProduceData::default()
                .with_partition_data(vec![part(0), part(1)]);
            topic = match v {
                13 => topic.with_topic_id(uuid::Uuid::from_u128(7)),
                _ => topic.with_name(s("orders").into()),
            };
            let req = ProduceRequest::default()
                .with_transactional_id(Some(s("tx").into()))
                .with_acks(-1)
                .with_topic_data(vec![topic.clone(), topic])
                .with_unknown_tagged_fields(tags(v, 9));
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            assert_eq!(walk(0, v, &body), Ok(body.len()), "produce v{v}");
        }
        for v in 4..=18 {
            let mut part = fetch_request::FetchPartition::default()
                .with_partition(3)
                .with_fetch_offset(42);
            if v >= 17 {
                part = part.with_replica_directory_id(uuid::Uuid::from_u128(9));
            }
            if v >= 18 {
                part = part.with_high_watermark(100);
            }
            let mut topic =
                fetch_request::FetchTopic::default().with_partitions(vec![part.clone(), part]);
            let mut forgotten =
                fetch_request::ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
            if v >= 13 {
                topic = topic.with_topic_id(uuid::Uuid::from_u128(5));
                forgotten = forgotten.with_topic_id(uuid::Uuid::from_u128(6));
            } else {
                topic = topic.with_topic(s("t").into());
                forgotten = forgotten.with_topic(s("u").into());
            }
            let mut req = FetchRequest::default()
                .with_topics(vec![topic])
                .with_unknown_tagged_fields(tags(v, 12));
            if v >= 7 {
                req = req.with_forgotten_topics_data(vec![forgotten]);
            }
            if v >= 11 {
                req = req.with_rack_id(s("rack"));
            }
            if v >= 12 {
                req = req.with_cluster_id(Some(s("cluster")));
            }
            if v >= 15 {
                req = req.with_replica_state(
                    fetch_request::ReplicaState::default()
                        .with_replica_id(1.into())
                        .with_replica_epoch(2),
                );
            }
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            assert_eq!(walk(1, v, &body), Ok(body.len()), "fetch v{v}");
            // The crate's known tags are the ones the table knows: ClusterId,
            // ReplicaState, and per partition ReplicaDirectoryId, HighWatermark.
            let known = [(12, 1), (15, 1), (17, 2), (18, 2)];
            let expected: usize = known
                .iter()
                .filter(|(from, _)| v >= *from)
                .map(|(_, n)| n)
                .sum();
            assert_eq!(
                trace(1, v, &body).known_tags,
                expected,
                "fetch v{v} known tags"
            );
        }
        for v in 0..=13 {
            let mut topic =
                metadata_request::MetadataRequestTopic::default().with_name(Some(s("t").into()));
            if v >= 10 {
                topic = topic.with_topic_id(uuid::Uuid::from_u128(1));
            }
            let req = MetadataRequest::default().with_topics(Some(vec![topic.clone(), topic]));
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            assert_eq!(walk(3, v, &body), Ok(body.len()), "metadata v{v}");
        }
        for v in 2..=7 {
            let config = create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")));
            let assignment = create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![1.into(), 2.into()]);
            let topic = create_topics_request::CreatableTopic::default()
                .with_name(s("t").into())
                .with_num_partitions(-1)
                .with_assignments(vec![assignment])
                .with_configs(vec![config.clone(), config]);
            let req = CreateTopicsRequest::default().with_topics(vec![topic]);
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            assert_eq!(walk(19, v, &body), Ok(body.len()), "create topics v{v}");
        }
        for v in 0..=9 {
            let proto = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x01meta"));
            let req = JoinGroupRequest::default()
                .with_group_id(s("g").into())
                .with_member_id(s("m"))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![proto.clone(), proto]);
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            assert_eq!(walk(11, v, &body), Ok(body.len()), "join group v{v}");
        }
    }

    /// Random schema-generated bodies: the walker consumes all of them, and the
    /// crate decodes each completely and re-encodes it byte for byte. This is
    /// what ties the hand-transcribed table to the crate's codecs.
    #[test]
    fn generated_bodies_agree_with_crate() {
        for (key, v) in all_versions() {
            for seed in 0..24 {
                let body = Gen::body(key, v, seed + 1000 * key as u64 + 100 * v as u64);
                assert_eq!(
                    walk(key, v, &body),
                    Ok(body.len()),
                    "key {key} v{v} seed {seed}"
                );
                let (again, left) = crate_roundtrip(key, v, &body)
                    .unwrap_or_else(|e| panic!("key {key} v{v} seed {seed}: crate: {e}"));
                assert_eq!(left, 0, "key {key} v{v}: crate left bytes");
                assert_eq!(
                    again, body,
                    "key {key} v{v} seed {seed}: re-encoding differs"
                );
                // Trailing bytes are ignored, as Kafka does.
                let mut longer = body.clone();
                longer.extend_from_slice(b"trailing");
                assert_eq!(walk(key, v, &longer), Ok(body.len()));
            }
        }
    }

    /// Every strict prefix of a valid body is rejected.
    #[test]
    fn truncations_are_rejected() {
        for (key, v) in all_versions() {
            for seed in 0..3 {
                let body = Gen::body(key, v, seed);
                for cut in 0..body.len() {
                    assert!(
                        walk(key, v, &body[..cut]).is_err(),
                        "key {key} v{v} cut {cut}"
                    );
                }
            }
        }
    }

    /// Replacing any array count with a huge one is rejected at that count.
    #[test]
    fn huge_counts_are_rejected() {
        let mut spliced = 0;
        for (key, v) in all_versions() {
            for seed in 0..4 {
                let body = Gen::body(key, v, seed);
                for (at, len) in trace(key, v, &body).counts {
                    spliced += 1;
                    for huge in [0x7fff_ffffu32, 0xffff_fffe, 1 << 20] {
                        let mut bad = body[..at].to_vec();
                        if len == 4 {
                            bad.extend_from_slice(&(huge & 0x7fff_ffff).to_be_bytes());
                        } else {
                            let mut x = huge;
                            while x >= 0x80 {
                                bad.push(x as u8 | 0x80);
                                x >>= 7;
                            }
                            bad.push(x as u8);
                        }
                        bad.extend_from_slice(&body[at + len..]);
                        let err = walk(key, v, &bad).unwrap_err();
                        assert!(
                            matches!(err, BoundsError::ArrayTooLong { .. }),
                            "key {key} v{v} at {at}: {err:?}"
                        );
                    }
                }
            }
        }
        assert!(spliced > 1000, "only {spliced} counts spliced");
    }

    /// The motivating frame: Metadata v12 whose topics compact array claims
    /// 0x7fffffff elements. The crate would `Vec::with_capacity` that many.
    #[test]
    fn metadata_v12_huge_topics_count_is_rejected() {
        let mut body = vec![0x80, 0x80, 0x80, 0x80, 0x08]; // uvarint 0x8000_0000 = count + 1
        body.extend_from_slice(&[1, 0, 0]); // allow auto-create, include ops, no tags
        body.resize(40, 0);
        assert_eq!(
            check_body(3, 12, &body),
            Err(BoundsError::ArrayTooLong {
                field: "Topics",
                count: 0x7fff_ffff,
                remaining: 35
            })
        );
        // The classic-encoding equivalent (v8).
        let mut body = 0x7fff_ffffi32.to_be_bytes().to_vec();
        body.resize(40, 0);
        assert!(matches!(
            check_body(3, 8, &body),
            Err(BoundsError::ArrayTooLong { .. })
        ));
    }

    #[test]
    fn malformed_prefixes() {
        // Six-byte varint, and a fifth byte with overflowing bits.
        let body = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0];
        assert_eq!(
            check_body(3, 12, &body),
            Err(BoundsError::BadVarint { field: "Topics" })
        );
        let body = [0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0, 0];
        assert_eq!(
            check_body(3, 12, &body),
            Err(BoundsError::BadVarint { field: "Topics" })
        );
        // Null where the schema forbids it (Metadata v0 topics are not nullable).
        assert_eq!(
            check_body(3, 0, &(-1i32).to_be_bytes()),
            Err(BoundsError::UnexpectedNull { field: "Topics" })
        );
        assert_eq!(check_body(3, 1, &(-1i32).to_be_bytes()), Ok(()));
        assert!(matches!(
            check_body(3, 1, &(-2i32).to_be_bytes()),
            Err(BoundsError::InvalidLength { len: -2, .. })
        ));
        // A string longer than the bytes left: DescribeGroups v0, one group id.
        let body = [0, 0, 0, 1, 0x7f, 0xff, b'g'];
        assert!(matches!(
            check_body(15, 0, &body),
            Err(BoundsError::Truncated { .. })
        ));
        // A tagged-field section claiming more entries than bytes (ApiVersions v3).
        let body = [2, b'a', 2, b'b', 0x7f];
        assert!(matches!(
            check_body(18, 3, &body),
            Err(BoundsError::ArrayTooLong { .. })
        ));
        // Known tag (Fetch v12 ClusterId) whose declared size disagrees with its value.
        let mut body = Gen::body(1, 12, 1);
        let tags_at = body.len() - 1;
        assert_eq!(
            body[tags_at], 0,
            "top-level tagged section is last and empty"
        );
        body.truncate(tags_at);
        body.extend_from_slice(&[1, 0, 9, 3, b'a', b'b', 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            walk(1, 12, &body),
            Err(BoundsError::TaggedSizeMismatch {
                field: "ClusterId",
                declared: 9,
                actual: 3
            })
        ));
    }

    fn arb_case() -> impl Strategy<Value = (usize, u64, Vec<(usize, u8, u8)>)> {
        let n = all_versions().len();
        (
            0..n,
            any::<u64>(),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Mutated valid bodies never panic the walker; whenever the walker
        /// accepts one, the crate decodes it without panicking or aborting.
        #[test]
        fn mutations_never_panic((which, seed, edits) in arb_case()) {
            let (key, v) = all_versions()[which];
            let mut body = Gen::body(key, v, seed);
            for (pos, byte, kind) in edits {
                let at = pos % (body.len() + 1);
                match kind {
                    0 if at < body.len() => body[at] = byte,
                    1 => body.insert(at, byte),
                    2 if at < body.len() => { body.remove(at); }
                    _ => body.truncate(at),
                }
            }
            if walk(key, v, &body).is_ok() {
                let _ = crate_roundtrip(key, v, &body);
            }
        }

        /// Arbitrary bytes under every schema: same property.
        #[test]
        fn garbage_never_panics(which in 0..all_versions().len(), body in prop::collection::vec(any::<u8>(), 0..96)) {
            let (key, v) = all_versions()[which];
            if walk(key, v, &body).is_ok() {
                let _ = crate_roundtrip(key, v, &body);
            }
        }
    }
}

//! A minimal Kafka-protocol client for broker-to-broker requests: one TCP
//! connection, one request at a time. Followers use it to fetch from leaders.
//!
//! Bounded like the server side: a response length over `max_frame_bytes` is a
//! protocol error before anything is allocated for it, and every call has a deadline.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("response frame of {size} bytes is over the limit {max}")]
    TooLarge { size: i64, max: usize },
    #[error("response to correlation id {got}, expected {expected}")]
    Correlation { got: i32, expected: i32 },
    #[error("codec: {0}")]
    Codec(String),
}

pub struct Client {
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
    max_frame_bytes: usize,
}

impl Client {
    pub async fn connect(addr: &str, client_id: &str, max_frame_bytes: usize, timeout: Duration) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| ClientError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(Client { stream, client_id: StrBytes::from_string(client_id.to_string()), next_correlation_id: 0, max_frame_bytes })
    }

    /// Send `req` at `version` and wait at most `timeout` for its response.
    pub async fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req, timeout: Duration) -> Result<Resp, ClientError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]); // length, filled below
        header.encode(&mut buf, key.request_header_version(version)).map_err(|e| ClientError::Codec(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| ClientError::Codec(e.to_string()))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&buf).await?;
            self.read_frame().await
        };
        let mut frame = tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout(timeout))??;
        let hdr = ResponseHeader::decode(&mut frame, Resp::header_version(version)).map_err(|e| ClientError::Codec(e.to_string()))?;
        if hdr.correlation_id != correlation_id {
            return Err(ClientError::Correlation { got: hdr.correlation_id, expected: correlation_id });
        }
        Resp::decode(&mut frame, version).map_err(|e| ClientError::Codec(e.to_string()))
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let size = i32::from_be_bytes(len);
        if size < 0 || size as usize > self.max_frame_bytes {
            return Err(ClientError::TooLarge { size: size.into(), max: self.max_frame_bytes });
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}

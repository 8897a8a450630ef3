//! ApiVersions (18): the versions table, so clients pick what both sides speak.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::RequestContext;
use crate::protocol::{ResponseError, versions};

fn api_keys() -> Vec<ApiVersion> {
    versions::SUPPORTED
        .iter()
        .map(|&(k, lo, hi)| ApiVersion::default().with_api_key(k as i16).with_min_version(lo).with_max_version(hi))
        .collect()
}

pub async fn handle(_ctx: &RequestContext, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    // v3+ requests carry client software name/version: informational only.
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// KIP-511: the answer to an ApiVersions request at a version we do not know.
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::UnsupportedVersion.code()).with_api_keys(api_keys())
}

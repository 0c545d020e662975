//! The custom flows: test bodies the case data marks `custom_flow: true` because the
//! extractor could not turn them into request entries, reimplemented from upstream's
//! Go (the table is `cases::CUSTOM_FLOWS`).

use serde_json::Value;

use crate::cases::{CustomFlow, RequestCase};
use crate::requests::{self, Target};

/// Round trips of upstream's httproute-request-header-modifier-backend-weights.go.
const BACKEND_HEADER_ROUND_TRIPS: usize = 100;

pub async fn run(flow: CustomFlow, rc: &RequestCase, target: &Target) -> Result<(), String> {
    match flow {
        CustomFlow::BackendHeaderNamesPod => backend_header_names_pod(rc, target).await,
    }
}

/// 100 round trips; in each, the backendRef's RequestHeaderModifier set exactly one
/// `Backend` header, and the pod that answered belongs to that backend.
async fn backend_header_names_pod(rc: &RequestCase, target: &Target) -> Result<(), String> {
    for i in 0..BACKEND_HEADER_ROUND_TRIPS {
        let (sent, _) = requests::attempt_until_connected(rc, target, &[]).await?;
        backend_header_matches_pod(&sent.response.echo)
            .map_err(|e| format!("round trip {i}: {e}"))?;
    }
    Ok(())
}

/// The echoed request has one `Backend` header, and the echoed pod name starts with
/// its value.
pub fn backend_header_matches_pod(echo: &Value) -> Result<(), String> {
    let values: Vec<&str> = echo
        .pointer("/headers/Backend")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let [backend] = values.as_slice() else {
        return Err(format!(
            "expected a single echoed Backend header, got {} ({values:?})",
            values.len()
        ));
    };
    let pod = echo["pod"].as_str().unwrap_or_default();
    if !pod.starts_with(backend) {
        return Err(format!(
            "the request with Backend: {backend} was answered by pod {pod:?}"
        ));
    }
    Ok(())
}

//! `POST /stream/green/converged`.

use axum::Json;
use axum::extract::State;
use ramanujan_core::replica::ReplicaState;
use ramanujan_http::{ApiError, JsonBody, Runtime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most replicas compared at once.
pub const MAX_REPLICAS: usize = 256;

/// A replica, by digest or by whole state.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaReport {
    /// A name for the replica.
    id: String,
    /// Its digest.
    digest: Option<String>,
    /// Its whole state.
    #[schema(value_type = Option<Object>)]
    state: Option<ReplicaState>,
}

/// The request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvergedRequest {
    /// The replicas (1 to the most taken).
    replicas: Vec<ReplicaReport>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// Replicas with one digest.
struct Group {
    /// The digest they share.
    digest: String,
    /// Who they are.
    replicas: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// What one replica lacks.
struct Lag {
    /// Who it is.
    replica: String,
    /// Terms the union of all posted states has and this replica lacks.
    missing_terms: usize,
    /// Equalities likewise.
    missing_equalities: usize,
    /// Up to eight of the missing term keys.
    sample_missing_terms: Vec<String>,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConvergedResponse {
    /// Every replica posted has the same digest.
    converged: bool,
    /// The replicas grouped by digest.
    groups: Vec<Group>,
    /// For replicas posted as whole states: what each lacks.
    lagging: Vec<Lag>,
}

/// Do these replicas agree, and if not, what differs?
#[utoipa::path(post, path = "/stream/green/converged", tag = "streams", request_body = ConvergedRequest,
    responses((status = 200, description = "`converged`, the groups of equal digests, what each lagging replica lacks", body = ConvergedResponse), ramanujan_http::JsonBodyErrors))]
pub async fn converged(
    State(_): State<Arc<Runtime>>,
    JsonBody(req): JsonBody<ConvergedRequest>,
) -> Result<Json<ConvergedResponse>, ApiError> {
    if req.replicas.is_empty() || req.replicas.len() > MAX_REPLICAS {
        return Err(ApiError::bad_request(format!("give 1 to {MAX_REPLICAS} replicas")));
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut union = ReplicaState::new();
    let mut states = Vec::new();
    for (i, r) in req.replicas.into_iter().enumerate() {
        let digest = match (r.digest, &r.state) {
            (Some(d), None) => d,
            (None, Some(s)) => s.digest(),
            (Some(d), Some(s)) if d == s.digest() => d,
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "replicas[{i}]: digest does not match state"
                )));
            }
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "replicas[{i}]: give `digest` or `state`"
                )));
            }
        };
        if let Some(state) = r.state {
            union.merge(&state);
            states.push((r.id.clone(), state));
        }
        groups.entry(digest).or_default().push(r.id);
    }
    let lagging = states
        .iter()
        .filter_map(|(id, state)| {
            let missing_terms = union.terms_missing_from(state);
            let missing_equalities = union.equalities_missing_from(state).count();
            (!missing_terms.is_empty() || missing_equalities > 0).then(|| Lag {
                replica: id.clone(),
                missing_terms: missing_terms.len(),
                missing_equalities,
                sample_missing_terms: missing_terms.iter().take(8).map(|k| k.to_string()).collect(),
            })
        })
        .collect();
    Ok(Json(ConvergedResponse {
        converged: groups.len() == 1,
        groups: groups
            .into_iter()
            .map(|(digest, replicas)| Group { digest, replicas })
            .collect(),
        lagging,
    }))
}

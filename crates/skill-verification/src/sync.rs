//! Anti-entropy between hosts: a host pulls each peer's membership (the
//! observed-remove set of keys, and its digest), fetches only the examples it
//! lacks, and merges. Hosts that pull from each other converge; a round with
//! equal digests moves one small answer and nothing else.
//!
//! The host supplies the transport ([`Peer`]: HTTP natively); [`pull`] is the
//! protocol.

use crate::references::Example;
use crate::service::{ChangeReport, SkillService};
use crdts::Orswot;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most examples one fetch asks for (`POST /skills/fetch`).
pub const MAX_FETCH: usize = 256;

/// A host's membership (`GET /skills/membership`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// Its digest (see `ReferenceSet::digest`).
    pub digest: String,
    /// The observed-remove set of example keys (`crdts`' `Orswot`).
    #[schema(value_type = Object)]
    pub members: Orswot<String, String>,
}

/// `POST /skills/fetch`'s request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The keys wanted (at most [`MAX_FETCH`]).
    pub keys: Vec<String>,
}

/// `POST /skills/fetch`'s answer: the examples of the keys held (a key
/// removed meanwhile is left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fetched {
    /// Examples by key.
    pub examples: BTreeMap<String, Example>,
}

/// What a host can ask a peer.
pub trait Peer: Send + Sync {
    /// The peer's membership.
    fn membership(&self) -> BoxFuture<'_, Result<Membership, String>>;
    /// The peer's examples of `keys` (at most [`MAX_FETCH`]).
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Fetched, String>>;
}

/// What one pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The digests were equal: nothing to do.
    Same,
    /// Merged, after fetching this many examples.
    Merged {
        /// Examples fetched.
        fetched: usize,
        /// Keys that became references here.
        added: usize,
        /// Keys that stopped being references here.
        removed: usize,
    },
}

/// Pulls from `peer` into `service` once: its membership, the examples this
/// host lacks (in fetches of [`MAX_FETCH`]), then one merge, checked whole.
/// A peer that removed an example between the two steps makes the merge
/// refuse (nothing changes); the next pull sees the removal.
pub async fn pull(service: &SkillService, peer: &dyn Peer) -> Result<Pulled, String> {
    let pulled = pull_once(service, peer).await;
    service.count_pull(pulled.is_ok());
    pulled
}

async fn pull_once(service: &SkillService, peer: &dyn Peer) -> Result<Pulled, String> {
    let theirs = peer.membership().await?;
    if theirs.digest == service.digest() {
        return Ok(Pulled::Same);
    }
    let missing = service.missing_from(&theirs.members);
    let mut examples = BTreeMap::new();
    for keys in missing.chunks(MAX_FETCH) {
        let fetched = peer.fetch(keys).await?;
        examples.extend(fetched.examples.into_iter().filter(|(k, _)| keys.contains(k)));
    }
    let fetched = examples.len();
    let report: ChangeReport = service.merge_members(theirs.members, examples).map_err(|e| e.message)?;
    Ok(Pulled::Merged {
        fetched,
        added: report.added.len(),
        removed: report.removed.len(),
    })
}

//! `POST /stream/green/verify`: each equality checked is recorded as a
//! `verification` event of `stream-green`.

use axum::Json;
use axum::extract::State;
use ramanujan_core::Color;
use ramanujan_core::lang::Expr;
use ramanujan_core::materialize::term_expr;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::RuleBook;
use ramanujan_core::verify::{
    ColorConflict, DerivationCheck, Verdict, check_derivation, check_semantically, verify_color_constraint,
};
use ramanujan_events::event::Verdict as EventVerdict;
use ramanujan_events::{Event, Kind};
use ramanujan_http::{ApiError, JsonBody, Runtime, offload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most equalities checked by evaluation in one request.
pub const MAX_EQUALITIES: usize = 512;
/// Most equalities also checked for a derivation (each is a small saturation).
pub const MAX_DERIVATIONS: usize = 32;
/// Time budget for all derivation checks of one request.
pub const DERIVATION_BUDGET: Duration = Duration::from_secs(2);

/// One equality to check, written as expressions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimedEquality {
    /// One side, an s-expression.
    lhs: String,
    /// The other side.
    rhs: String,
    /// The colour claimed to derive it (default RED).
    #[serde(default = "red")]
    color: Color,
    /// The rule claimed to derive it.
    #[serde(default)]
    rule: Option<String>,
    /// The agent that claims it.
    #[serde(default)]
    agent: Option<String>,
}

fn red() -> Color {
    Color::Red
}

/// The request: equalities, a replica, or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Equalities to check.
    #[serde(default)]
    equalities: Vec<ClaimedEquality>,
    /// A replica whose RED and BLUE equalities to check.
    #[schema(value_type = Option<Object>)]
    state: Option<ReplicaState>,
    /// Also search for a derivation with egg's explanations (default true).
    #[serde(default = "yes")]
    derivations: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// One equality's verdicts.
struct CheckedEquality {
    /// The left side, as parsed.
    lhs: String,
    /// The right side, as parsed.
    rhs: String,
    /// The colour claimed.
    color: Color,
    /// The rule claimed, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// The agent that claimed it, when said.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    /// Whether the two sides are equal as functions.
    semantic: Verdict,
    /// Whether the claimed colour's rules derive it (when asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    derivation: Option<DerivationCheck>,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
/// How many of each verdict.
struct Summary {
    /// Equalities checked.
    checked: usize,
    /// Verified.
    verified: usize,
    /// Refuted, each with a counterexample.
    refuted: usize,
    /// Neither, each with the reason.
    inconclusive: usize,
    /// Derivations searched for.
    derivations_checked: usize,
    /// Equalities left unchecked because of the per-request cap.
    skipped: usize,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    /// True only when every equality was verified (none refuted, none
    /// inconclusive, none skipped).
    passed: bool,
    /// How many of each verdict.
    summary: Summary,
    /// Each equality's verdicts, in the order given.
    results: Vec<CheckedEquality>,
    /// Steps claimed by both RED and BLUE.
    color_conflicts: Vec<ColorConflict>,
}

struct Claim {
    lhs: Expr,
    rhs: Expr,
    color: Color,
    rule: Option<String>,
    agent: Option<String>,
}

fn run(claims: Vec<Claim>, skipped: usize, conflicts: Vec<ColorConflict>, derivations: bool) -> VerifyResponse {
    let started = Instant::now();
    let mut summary = Summary {
        skipped,
        ..Summary::default()
    };
    let mut results = Vec::with_capacity(claims.len());
    let builtin = RuleBook::new(true, &[]).expect("built-in rules compile");
    for (i, claim) in claims.into_iter().enumerate() {
        let semantic = check_semantically(&claim.lhs, &claim.rhs);
        match semantic {
            Verdict::Verified { .. } => summary.verified += 1,
            Verdict::Refuted { .. } => summary.refuted += 1,
            Verdict::Inconclusive { .. } => summary.inconclusive += 1,
        }
        summary.checked += 1;
        let remaining = DERIVATION_BUDGET.saturating_sub(started.elapsed());
        let derivation = (derivations && i < MAX_DERIVATIONS && !remaining.is_zero()).then(|| {
            summary.derivations_checked += 1;
            let mut rewrites = builtin.rewrites(claim.color);
            if claim.color != Color::Green {
                rewrites.extend(builtin.rewrites(Color::Green));
            }
            check_derivation(
                &claim.lhs,
                &claim.rhs,
                &rewrites,
                remaining.min(Duration::from_millis(250)),
            )
        });
        results.push(CheckedEquality {
            lhs: claim.lhs.to_string(),
            rhs: claim.rhs.to_string(),
            color: claim.color,
            rule: claim.rule,
            agent: claim.agent,
            semantic,
            derivation,
        });
    }
    VerifyResponse {
        // Every equality checked, and every check verified: an inconclusive or
        // skipped one is not a pass.
        passed: summary.verified == summary.checked && summary.skipped == 0,
        summary,
        results,
        color_conflicts: conflicts,
    }
}

/// Checks the posted equalities and the RED/BLUE equalities of the posted replica.
#[utoipa::path(post, path = "/stream/green/verify", tag = "streams", request_body = VerifyRequest,
    responses((status = 200, description = "each equality `verified`, `refuted` (with a counterexample) or `inconclusive` (with the reason); `passed` only when every one is verified", body = VerifyResponse),
        ramanujan_http::JsonBodyErrors, (status = 503, description = "the time ran out", body = ramanujan_http::ErrorBody)))]
pub async fn verify(
    State(runtime): State<Arc<Runtime>>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let mut claims = Vec::new();
    for (i, eq) in req.equalities.into_iter().enumerate() {
        let parse = |side: &str, text: &str| {
            parse_expr(text).map_err(|e| ApiError::bad_request(format!("equalities[{i}].{side}: {e}")))
        };
        claims.push(Claim {
            lhs: parse("lhs", &eq.lhs)?,
            rhs: parse("rhs", &eq.rhs)?,
            color: eq.color,
            rule: eq.rule,
            agent: eq.agent,
        });
    }
    let mut conflicts = Vec::new();
    if let Some(state) = &req.state {
        conflicts = verify_color_constraint(state);
        for eq in state.equalities().filter(|e| e.provenance.color != Color::Green) {
            if let (Some(lhs), Some(rhs)) = (term_expr(state, eq.lhs), term_expr(state, eq.rhs)) {
                claims.push(Claim {
                    lhs,
                    rhs,
                    color: eq.provenance.color,
                    rule: Some(eq.provenance.rule.to_string()),
                    agent: Some(eq.provenance.agent.to_string()),
                });
            }
        }
    }
    if claims.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to verify: give `equalities` or a `state` with RED/BLUE equalities",
        ));
    }
    let skipped = claims.len().saturating_sub(MAX_EQUALITIES);
    claims.truncate(MAX_EQUALITIES);
    let derivations = req.derivations;
    let response = offload::run(&runtime.offload, move || run(claims, skipped, conflicts, derivations)).await?;
    if let Some(events) = &runtime.events {
        for checked in &response.results {
            events.emit(Event::from_component(
                "stream-green",
                Kind::Verification {
                    verdict: match checked.semantic {
                        Verdict::Verified { .. } => EventVerdict::Verified,
                        Verdict::Refuted { .. } => EventVerdict::Refuted,
                        Verdict::Inconclusive { .. } => EventVerdict::Inconclusive,
                    },
                    equality: format!("{} = {}", checked.lhs, checked.rhs),
                },
            ));
        }
    }
    Ok(Json(response))
}

//! The `/colors/...` routes.

use crate::assign::{Method, assign};
use crate::palette::{GOLDEN_ANGLE, MAX_COLORS, PaletteColor, palette};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use ramanujan_color::Color;
use ramanujan_http::{ApiError, JsonBody, QueryParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Most vertices in one `/colors/assign` request.
pub const MAX_VERTICES: usize = 4096;
/// Most edges in one `/colors/assign` request.
pub const MAX_EDGES: usize = 65_536;

/// The routes under `/colors`.
pub fn router() -> Router {
    Router::new()
        .route("/colors/health", get(health))
        .route("/colors/palette", get(get_palette))
        .route("/colors/assign", post(post_assign))
        .route("/colors/polarity", get(get_polarities))
        .route("/colors/polarity/{color}", get(get_polarity))
}

/// `GET /colors/palette?n=&seed=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PaletteQuery {
    /// How many colours (1 to 4,096, default 8).
    n: Option<usize>,
    /// A 64-bit seed, decimal or `0x` hex (default: fixed); the same seed gives the same palette.
    seed: Option<String>,
}

/// A 64-bit seed in decimal or `0x` hex.
fn parse_seed(text: &str) -> Result<u64, ApiError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| {
        ApiError::bad_request(format!(
            "seed `{text}` is not a 64-bit unsigned integer (decimal or 0x hex)"
        ))
    })
}

/// A palette.
#[derive(Serialize, utoipa::ToSchema)]
struct PaletteAnswer {
    seed: String,
    n: usize,
    golden_angle: f64,
    colors: Vec<PaletteColor>,
}

#[utoipa::path(get, path = "/colors/health", tag = "duck-colors", responses((status = 200, description = "the component answers", body = ramanujan_http::openapi::Health)))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "component": "duck-colors"}))
}

/// A palette of `n` distinct colours (golden-angle hues in OKLCH).
#[utoipa::path(get, path = "/colors/palette", tag = "duck-colors", params(PaletteQuery),
    responses((status = 200, description = "the palette", body = PaletteAnswer), ramanujan_http::QueryErrors))]
async fn get_palette(QueryParams(q): QueryParams<PaletteQuery>) -> Result<Json<PaletteAnswer>, ApiError> {
    let n = q.n.unwrap_or(8);
    if !(1..=MAX_COLORS).contains(&n) {
        return Err(ApiError::bad_request(format!("n must be 1 to {MAX_COLORS}")));
    }
    let seed = q.seed.as_deref().map(parse_seed).transpose()?.unwrap_or(1069);
    Ok(Json(PaletteAnswer {
        seed: seed.to_string(),
        n,
        golden_angle: GOLDEN_ANGLE,
        colors: palette(n, seed),
    }))
}

/// A vertex id: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VertexId {
    /// An integer id.
    Int(i64),
    /// A string id.
    Text(String),
}

/// `POST /colors/assign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The vertices, in order; when absent, every vertex named by an edge, in order of appearance.
    #[serde(default)]
    pub vertices: Option<Vec<VertexId>>,
    /// Undirected edges.
    pub edges: Vec<(VertexId, VertexId)>,
}

/// A vertex's colour.
#[derive(Serialize, utoipa::ToSchema)]
struct VertexColor {
    vertex: VertexId,
    color: Color,
    polarity: ramanujan_color::Polarity,
}

/// A colouring.
#[derive(Serialize, utoipa::ToSchema)]
struct AssignAnswer {
    colors: Vec<VertexColor>,
    method: Method,
    three_colorable: Option<bool>,
    conflicts: Vec<(VertexId, VertexId)>,
    counts: HashMap<&'static str, usize>,
}

/// Vertex ids in order, and edges between their positions.
type IndexedGraph = (Vec<VertexId>, Vec<(usize, usize)>);

impl AssignRequest {
    /// Numbers the vertices and checks the edges.
    fn index(&self) -> Result<IndexedGraph, ApiError> {
        if self.edges.len() > MAX_EDGES {
            return Err(ApiError::bad_request(format!("at most {MAX_EDGES} edges")));
        }
        let mut ids: Vec<VertexId> = Vec::new();
        let mut index: HashMap<VertexId, usize> = HashMap::new();
        let explicit = self.vertices.is_some();
        for v in self.vertices.iter().flatten() {
            if index.insert(v.clone(), ids.len()).is_some() {
                return Err(ApiError::bad_request(format!("vertex {} is listed twice", show(v))));
            }
            ids.push(v.clone());
        }
        let mut edges = Vec::with_capacity(self.edges.len());
        for (i, (a, b)) in self.edges.iter().enumerate() {
            let mut number = |v: &VertexId| -> Result<usize, ApiError> {
                if let Some(&n) = index.get(v) {
                    return Ok(n);
                }
                if explicit {
                    return Err(ApiError::bad_request(format!(
                        "edge {i} names vertex {} not in vertices",
                        show(v)
                    )));
                }
                index.insert(v.clone(), ids.len());
                ids.push(v.clone());
                Ok(ids.len() - 1)
            };
            let (u, w) = (number(a)?, number(b)?);
            if u == w {
                return Err(ApiError::bad_request(format!(
                    "edge {i} joins vertex {} to itself",
                    show(a)
                )));
            }
            edges.push((u, w));
        }
        if ids.is_empty() {
            return Err(ApiError::bad_request("the graph has no vertices"));
        }
        if ids.len() > MAX_VERTICES {
            return Err(ApiError::bad_request(format!("at most {MAX_VERTICES} vertices")));
        }
        Ok((ids, edges))
    }
}

fn show(v: &VertexId) -> String {
    match v {
        VertexId::Int(n) => n.to_string(),
        VertexId::Text(s) => format!("`{s}`"),
    }
}

/// Colours a graph's vertices RED, BLUE and GREEN so that neighbours differ
/// (exactly when it can, else DSatur with the conflicts listed).
#[utoipa::path(post, path = "/colors/assign", tag = "duck-colors", request_body = AssignRequest,
    responses((status = 200, description = "the colouring", body = AssignAnswer), ramanujan_http::JsonBodyErrors))]
async fn post_assign(JsonBody(req): JsonBody<AssignRequest>) -> Result<Json<AssignAnswer>, ApiError> {
    let (ids, edges) = req.index()?;
    let coloring = assign(ids.len(), &edges);
    let mut counts = HashMap::new();
    for c in &coloring.colors {
        *counts.entry(c.name()).or_insert(0) += 1;
    }
    Ok(Json(AssignAnswer {
        colors: ids
            .iter()
            .zip(&coloring.colors)
            .map(|(v, &color)| VertexColor {
                vertex: v.clone(),
                color,
                polarity: color.polarity(),
            })
            .collect(),
        method: coloring.method,
        three_colorable: coloring.three_colorable,
        conflicts: coloring
            .conflicts
            .iter()
            .map(|&(u, v)| (ids[u].clone(), ids[v].clone()))
            .collect(),
        counts,
    }))
}

/// A colour and its polarity.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ColorPolarity {
    /// The colour.
    color: Color,
    /// Its polarity.
    polarity: ramanujan_color::Polarity,
}

fn polarity_of(color: Color) -> ColorPolarity {
    ColorPolarity {
        color,
        polarity: color.polarity(),
    }
}

/// Each colour's polarity.
#[utoipa::path(get, path = "/colors/polarity", tag = "duck-colors", responses((status = 200, description = "each colour's polarity", body = Vec<ColorPolarity>)))]
async fn get_polarities() -> Json<Vec<ColorPolarity>> {
    Json(Color::ALL.into_iter().map(polarity_of).collect())
}

/// One colour's polarity.
#[utoipa::path(get, path = "/colors/polarity/{color}", tag = "duck-colors",
    params(("color" = String, Path, description = "RED, BLUE or GREEN (any case)")),
    responses((status = 200, description = "the colour's polarity", body = ColorPolarity),
        (status = 404, description = "no such colour", body = ramanujan_http::ErrorBody)))]
async fn get_polarity(Path(name): Path<String>) -> Result<Json<ColorPolarity>, ApiError> {
    let color = Color::ALL
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(&name))
        .ok_or_else(|| ApiError::not_found(format!("no colour `{name}`: RED, BLUE or GREEN")))?;
    Ok(Json(polarity_of(color)))
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(health, get_palette, post_assign, get_polarities, get_polarity))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

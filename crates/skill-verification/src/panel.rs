//! The verifiers: each judges a query by its nearest references, in its own
//! random projection of the embedding and on its own sample of the references,
//! so that their errors are not all the same.
//!
//! Verifier `i`'s projection is a very sparse random projection (Li, Hastie
//! and Church, 2006: each of `projected_dim` outputs sums about `sqrt(dim)`
//! inputs with random signs), drawn from ChaCha8 seeded by the panel's seed and
//! `i`; its sample keeps a reference when a hash of the seed, `i` and the
//! reference's key falls under `sample_permille` (a bootstrap-like view that
//! stays put as references come and go). Both depend on the seed only, so every
//! host with the same seed and references judges the same way, bit for bit.

use crate::embedding::dot;
use crate::references::Example;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How the panel is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelConfig {
    /// Verifiers (`NUM_AGENTS`, 17).
    pub verifiers: usize,
    /// Embedding dimension (`SKILL_EMBEDDING_DIM`, 2048: ResNet50's pooled feature).
    pub dim: usize,
    /// Each verifier's projected dimension (32).
    pub projected_dim: usize,
    /// Each verifier's share of the references, in thousandths (750).
    pub sample_permille: u32,
    /// The seed of every projection and sample (`SKILL_SEED`).
    pub seed: u64,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig {
            verifiers: 17,
            dim: 2048,
            projected_dim: 32,
            sample_permille: 750,
            seed: 0x5EED_0017,
        }
    }
}

/// One verifier's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Vote {
    /// The label its nearest references favour.
    pub label: String,
    /// The share of their weight that favours it, in (0, 1].
    pub score: f32,
}

/// One verifier: its projection and its sample.
#[derive(Debug, Clone)]
pub struct Verifier {
    index: usize,
    /// For each output, the inputs it sums and their signs.
    rows: Vec<Vec<(u32, f32)>>,
    sample_salt: [u8; 16],
    sample_permille: u32,
}

impl Verifier {
    fn new(config: &PanelConfig, index: usize) -> Verifier {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let per_row = (config.dim as f64).sqrt().ceil().max(1.0) as usize;
        let rows = (0..config.projected_dim)
            .map(|_| {
                let mut row: Vec<(u32, f32)> = (0..per_row)
                    .map(|_| {
                        let at = rng.random_range(0..config.dim) as u32;
                        let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                        (at, sign)
                    })
                    .collect();
                // In input order: the same sums in the same order everywhere.
                row.sort_by_key(|&(at, _)| at);
                row
            })
            .collect();
        let mut sample_salt = [0u8; 16];
        rng.fill(&mut sample_salt);
        Verifier {
            index,
            rows,
            sample_salt,
            sample_permille: config.sample_permille,
        }
    }

    /// Its index in the panel.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The unit-length projection of a unit vector (`None` if it projects to 0).
    pub fn project(&self, v: &[f32]) -> Option<Vec<f32>> {
        let mut out: Vec<f32> = self
            .rows
            .iter()
            .map(|row| row.iter().fold(0f32, |acc, &(at, sign)| acc + sign * v[at as usize]))
            .collect();
        let norm = dot(&out, &out).sqrt();
        if norm.is_nan() || norm <= 1e-12 {
            return None;
        }
        for x in &mut out {
            *x /= norm;
        }
        Some(out)
    }

    /// Whether its sample holds the reference with this key.
    pub fn samples(&self, key: &str) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.sample_salt);
        hasher.update(key.as_bytes());
        let h = hasher.finalize();
        let x = u32::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1], h.as_bytes()[2], h.as_bytes()[3]]);
        x % 1000 < self.sample_permille
    }
}

/// What one verifier sees of the references: their projections, row by row.
#[derive(Debug, Clone, Default)]
pub struct View {
    keys: Vec<Arc<str>>,
    labels: Vec<Arc<str>>,
    /// The projections in blocks of [`BLOCK`] rows, each block dimension-major
    /// (`projected_dim` runs of `BLOCK` values: see [`View::at`]), so a scan
    /// sums eight rows side by side with no horizontal sum per row. The last
    /// block is padded with zeros.
    matrix: Vec<f32>,
    rows_by_key: HashMap<Arc<str>, usize>,
}

/// Rows per block of a view's matrix.
const BLOCK: usize = 8;

impl View {
    /// Where value `d` of row `row` sits in the matrix, for `pd` dimensions.
    fn at(row: usize, d: usize, pd: usize) -> usize {
        (row / BLOCK) * pd * BLOCK + d * BLOCK + row % BLOCK
    }

    /// Appends a row of `pd` values.
    fn push_row(&mut self, values: &[f32]) {
        let (row, pd) = (self.keys.len() - 1, values.len());
        if row % BLOCK == 0 {
            self.matrix.resize(self.matrix.len() + pd * BLOCK, 0.0);
        }
        for (d, &x) in values.iter().enumerate() {
            self.matrix[View::at(row, d, pd)] = x;
        }
    }

    /// The similarity of `q` (of length `pd`) to every row, in row order, into
    /// `out`: for each row the sum over `d` of `q[d] * row[d]`, `d` ascending
    /// (the same bits on every host).
    fn scan(&self, q: &[f32], out: &mut Vec<f32>) {
        let pd = q.len();
        out.clear();
        for block in self.matrix.chunks_exact(pd * BLOCK) {
            let mut acc = [0f32; BLOCK];
            for (column, &x) in block.as_chunks::<BLOCK>().0.iter().zip(q) {
                for l in 0..BLOCK {
                    acc[l] += x * column[l];
                }
            }
            out.extend_from_slice(&acc);
        }
        out.truncate(self.keys.len());
    }

    /// References in this view.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The verifiers and their views of the references.
#[derive(Debug, Clone)]
pub struct Panel {
    config: PanelConfig,
    verifiers: Vec<Verifier>,
    views: Vec<View>,
}

impl Panel {
    /// A panel with no references.
    pub fn new(config: PanelConfig) -> Panel {
        let verifiers: Vec<Verifier> = (0..config.verifiers).map(|i| Verifier::new(&config, i)).collect();
        let views = vec![View::default(); verifiers.len()];
        Panel {
            config,
            verifiers,
            views,
        }
    }

    /// How it was made.
    pub fn config(&self) -> &PanelConfig {
        &self.config
    }

    /// Its verifiers.
    pub fn verifiers(&self) -> &[Verifier] {
        &self.verifiers
    }

    /// Verifier `i`'s view.
    pub fn view(&self, i: usize) -> &View {
        &self.views[i]
    }

    /// Adds a reference to the views of the verifiers that sample it.
    pub fn insert(&mut self, key: &str, example: &Example) {
        let key: Arc<str> = Arc::from(key);
        let label: Arc<str> = Arc::from(example.label.as_str());
        for (verifier, view) in self.verifiers.iter().zip(&mut self.views) {
            if view.rows_by_key.contains_key(&key) || !verifier.samples(&key) {
                continue;
            }
            let Some(projected) = verifier.project(&example.embedding) else {
                continue;
            };
            view.rows_by_key.insert(key.clone(), view.keys.len());
            view.keys.push(key.clone());
            view.labels.push(label.clone());
            view.push_row(&projected);
        }
    }

    /// Takes a reference out of every view.
    pub fn remove(&mut self, key: &str) {
        let pd = self.config.projected_dim;
        for view in &mut self.views {
            let Some(row) = view.rows_by_key.remove(key) else {
                continue;
            };
            let last = view.keys.len() - 1;
            view.keys.swap_remove(row);
            view.labels.swap_remove(row);
            for d in 0..pd {
                let from = View::at(last, d, pd);
                view.matrix[View::at(row, d, pd)] = view.matrix[from];
                view.matrix[from] = 0.0;
            }
            if row != last {
                view.rows_by_key.insert(view.keys[row].clone(), row);
            }
            if last % BLOCK == 0 {
                view.matrix.truncate(last / BLOCK * pd * BLOCK);
            }
        }
    }

    /// Verifier `i`'s vote on the unit vector `query` from its `k` nearest
    /// references (ties broken by key); `None` when its view is empty.
    ///
    /// Each neighbour weighs `(1 + cosine) / 2`; the vote is the label of most
    /// weight (ties by label), its score that weight's share.
    pub fn judge(&self, i: usize, query: &[f32], k: usize) -> Option<Vote> {
        let (verifier, view) = (&self.verifiers[i], &self.views[i]);
        if view.is_empty() || k == 0 {
            return None;
        }
        let q = verifier.project(query)?;
        let mut sims = Vec::with_capacity(view.len() + BLOCK);
        view.scan(&q, &mut sims);
        // The k best (similarity descending, key ascending), kept sorted.
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (row, &sim) in sims.iter().enumerate() {
            if best.len() == k && !better((sim, row), best[k - 1], &view.keys) {
                continue;
            }
            let at = best.partition_point(|&b| better(b, (sim, row), &view.keys));
            best.insert(at, (sim, row));
            best.truncate(k);
        }
        let mut weights: BTreeMap<&str, f32> = BTreeMap::new();
        let mut total = 0f32;
        for &(sim, row) in &best {
            let w = (1.0 + sim.clamp(-1.0, 1.0)) / 2.0;
            *weights.entry(&view.labels[row]).or_insert(0.0) += w;
            total += w;
        }
        // Most weight; among equals the first label (the map is in label order).
        let (label, weight) = weights.iter().fold(None::<(&str, f32)>, |acc, (&l, &w)| match acc {
            Some((_, bw)) if bw >= w => acc,
            _ => Some((l, w)),
        })?;
        let score = if total > 0.0 {
            weight / total
        } else {
            1.0 / best.len() as f32
        };
        Some(Vote {
            label: label.to_string(),
            score,
        })
    }
}

/// Whether neighbour `a` ranks before `b`: higher similarity, then lower key.
fn better(a: (f32, usize), b: (f32, usize), keys: &[Arc<str>]) -> bool {
    match a.0.total_cmp(&b.0) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => keys[a.1] < keys[b.1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::references::Provenance;
    use std::collections::BTreeSet;

    fn example(label: &str, v: Vec<f32>) -> Example {
        let norm = dot(&v, &v).sqrt();
        Example {
            label: label.into(),
            embedding: v.into_iter().map(|x| x / norm).collect(),
            provenance: BTreeSet::from([Provenance {
                host: "t".into(),
                source: None,
            }]),
        }
    }

    fn config() -> PanelConfig {
        PanelConfig {
            dim: 64,
            projected_dim: 16,
            ..PanelConfig::default()
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_panel_and_another_seed_another() {
        let a = Panel::new(config());
        let b = Panel::new(config());
        let c = Panel::new(PanelConfig { seed: 7, ..config() });
        let v: Vec<f32> = (0..64).map(|i| (i as f32).sin()).collect();
        assert_eq!(a.verifiers[3].project(&v), b.verifiers[3].project(&v));
        assert_ne!(a.verifiers[3].project(&v), c.verifiers[3].project(&v));
        assert_ne!(
            a.verifiers[3].project(&v),
            a.verifiers[4].project(&v),
            "verifiers differ"
        );
    }

    #[test]
    fn a_verifier_votes_its_nearest_references_and_removal_takes_one_out_of_every_view() {
        let mut panel = Panel::new(PanelConfig {
            sample_permille: 1000,
            ..config()
        });
        let mut keys = Vec::new();
        for i in 0..6 {
            let mut cat = vec![0.0f32; 64];
            cat[..8].fill(1.0);
            cat[10 + i] = 0.3;
            let mut dog = vec![0.0f32; 64];
            dog[32..40].fill(1.0);
            dog[50 + i] = 0.3;
            for e in [example("cat", cat), example("dog", dog)] {
                let key = e.key();
                panel.insert(&key, &e);
                keys.push(key);
            }
        }
        let mut q = vec![0.0f32; 64];
        q[..8].fill(1.0);
        let q = example("q", q).embedding;
        for i in 0..panel.verifiers.len() {
            let vote = panel.judge(i, &q, 5).unwrap();
            assert_eq!(vote.label, "cat", "verifier {i}");
            assert!(vote.score > 0.5);
        }
        for key in &keys {
            panel.remove(key);
        }
        assert!(panel.views.iter().all(|v| v.is_empty() && v.matrix.is_empty()));
        assert_eq!(panel.judge(0, &q, 5), None);
    }

    #[test]
    fn the_blocked_matrix_keeps_every_row_its_own_through_removals_anywhere() {
        let mut panel = Panel::new(PanelConfig {
            sample_permille: 1000,
            ..config()
        });
        let mut live: Vec<(String, Example)> = Vec::new();
        for i in 0..29 {
            let v: Vec<f32> = (0..64).map(|d| ((i * 31 + d * 7) as f32).sin()).collect();
            let e = example(&format!("l{}", i % 3), v);
            panel.insert(&e.key(), &e);
            live.push((e.key(), e));
        }
        let q: Vec<f32> = (0..64).map(|d| (d as f32).cos()).collect();
        let q = example("q", q).embedding;
        // Remove the last row, a middle one, the first, and whole blocks' worth,
        // checking each time that every row still answers for its own key.
        for remove in [28, 13, 0, 7, 7, 7, 7, 7, 7, 7, 7, 0, 5] {
            let (key, _) = live.remove(remove.min(live.len() - 1));
            panel.remove(&key);
            let verifier = &panel.verifiers[2];
            let view = &panel.views[2];
            let projected = verifier.project(&q).unwrap();
            let mut sims = Vec::new();
            view.scan(&projected, &mut sims);
            assert_eq!(sims.len(), live.len());
            assert_eq!(
                view.matrix.len(),
                live.len().div_ceil(BLOCK) * 16 * BLOCK,
                "no empty block kept"
            );
            for (key, e) in &live {
                let row = view.rows_by_key[key.as_str()];
                assert_eq!(&*view.keys[row], key.as_str());
                let want = dot(&projected, &verifier.project(&e.embedding).unwrap());
                assert!(
                    (sims[row] - want).abs() < 1e-5,
                    "row {row}: {} against {want}",
                    sims[row]
                );
            }
        }
    }

    #[test]
    fn samples_keep_about_their_share() {
        let panel = Panel::new(config());
        let kept = (0..10_000)
            .filter(|i| panel.verifiers[0].samples(&i.to_string()))
            .count();
        assert!((7_000..8_000).contains(&kept), "{kept} of 10,000 at 750 per mille");
    }
}

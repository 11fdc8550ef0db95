//! Who talks to whom: the Sierpiński graph S(n, 3) (S(2,3), nine agents, is the
//! default) and random regular expanders measured against the Ramanujan bound.

use crate::agent::{Agent, Share, WorkLimits};
use duck_colors::SplitMix64;
use ramanujan_core::Color;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet, VecDeque};

/// Most agents in one topology.
pub const MAX_AGENTS: usize = 1024;

/// When agent `index` starts anti-entropy first, after it starts: agents
/// are spread over one `interval` in 16 slots so they do not all sync at once
/// (at least 1 ms, so none syncs before it has looked at its mail). Every
/// driver (threads, NATS, the Spin bridge's clock) staggers by this.
pub fn first_sync_delay(index: usize, interval: std::time::Duration) -> std::time::Duration {
    interval
        .mul_f64((index % 16) as f64 / 16.0)
        .max(std::time::Duration::from_millis(1))
}

/// The id of the agent at position `index` of a topology: `agent-{index}`.
pub fn agent_id(index: usize) -> String {
    format!("agent-{index}")
}

/// An undirected simple graph of agents `0..n`, with each agent's colour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// `sierpinski` or `ramanujan`.
    pub kind: String,
    /// Neighbours of each agent, sorted.
    pub neighbors: Vec<Vec<usize>>,
    /// Each agent's colour (neighbours differ wherever the graph allows).
    pub colors: Vec<Color>,
    /// Edges whose agents share a colour (empty for a proper colouring).
    pub color_conflicts: Vec<(usize, usize)>,
    /// Spectral facts, for regular graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spectrum: Option<Spectrum>,
}

/// How good an expander a d-regular graph is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Spectrum {
    /// The degree d.
    pub degree: usize,
    /// The largest absolute non-trivial adjacency eigenvalue, λ = max(|λ₂|, |λₙ|).
    pub second_eigenvalue: f64,
    /// The Ramanujan bound 2√(d−1).
    pub ramanujan_bound: f64,
    /// λ ≤ 2√(d−1).
    pub is_ramanujan: bool,
}

/// Why a topology cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopologyError(pub String);

impl Topology {
    fn new(kind: &str, n: usize, edges: &[(usize, usize)]) -> Topology {
        let mut neighbors = vec![BTreeSet::new(); n];
        for &(u, v) in edges {
            neighbors[u].insert(v);
            neighbors[v].insert(u);
        }
        let neighbors: Vec<Vec<usize>> = neighbors.into_iter().map(|s| s.into_iter().collect()).collect();
        let coloring = duck_colors::assign(n, edges);
        Topology {
            kind: kind.into(),
            neighbors,
            colors: coloring.colors,
            color_conflicts: coloring.conflicts,
            spectrum: None,
        }
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.neighbors.len()
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.neighbors.is_empty()
    }

    /// A fresh agent at position `index`: its colour, its neighbours, and every
    /// id of the graph as the agents it may hear from.
    pub fn agent(&self, index: usize, limits: WorkLimits) -> Result<Agent, String> {
        if index >= self.len() {
            return Err(format!("agent-{index} is not in a topology of {} agents", self.len()));
        }
        let known: HashSet<String> = (0..self.len()).map(agent_id).collect();
        let neighbors = self.neighbors[index].iter().map(|&j| agent_id(j)).collect();
        let mut agent = Agent::new(agent_id(index), self.colors[index], neighbors, known, limits);
        agent.set_share(self.share(index));
        Ok(agent)
    }

    /// Which submissions the agent at `index` rewrites: its rank among the
    /// agents of its colour, out of how many there are. Each submission is
    /// rewritten by one agent of each colour, and a colour's work is split
    /// evenly among its agents (see [`Share`]).
    pub fn share(&self, index: usize) -> Share {
        let color = self.colors[index];
        Share {
            rank: self.colors[..index].iter().filter(|&&c| c == color).count(),
            of: self.colors.iter().filter(|&&c| c == color).count(),
        }
    }

    /// Every edge once, `(u, v)` with `u < v`, sorted.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (0..self.len())
            .flat_map(|u| self.neighbors[u].iter().filter(move |&&v| u < v).map(move |&v| (u, v)))
            .collect()
    }

    /// Every edge once, by agent id (see [`agent_id`]).
    pub fn edge_ids(&self) -> Vec<(String, String)> {
        self.edges()
            .into_iter()
            .map(|(u, v)| (agent_id(u), agent_id(v)))
            .collect()
    }

    /// Hop distances from `from` (`usize::MAX` where unreachable).
    pub fn distances(&self, from: usize) -> Vec<usize> {
        let mut dist = vec![usize::MAX; self.len()];
        dist[from] = 0;
        let mut queue = VecDeque::from([from]);
        while let Some(u) = queue.pop_front() {
            for &v in &self.neighbors[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        dist
    }

    /// The longest shortest path (`None` if disconnected).
    pub fn diameter(&self) -> Option<usize> {
        let mut longest = 0;
        for u in 0..self.len() {
            let far = *self.distances(u).iter().max()?;
            if far == usize::MAX {
                return None;
            }
            longest = longest.max(far);
        }
        Some(longest)
    }
}

/// The Sierpiński graph S(`level`, 3): vertices are words of length `level` over
/// {0, 1, 2}; `u` and `v` are adjacent when, for some h, they agree before h,
/// differ at h, and from h + 1 on `u` repeats `v[h]` and `v` repeats `u[h]`
/// (Klavžar and Milutinović, 1997). S(2,3) has 9 vertices, 12 edges, diameter 3.
pub fn sierpinski(level: u32) -> Result<Topology, TopologyError> {
    if !(1..=6).contains(&level) {
        return Err(TopologyError(
            "sierpinski level must be 1 to 6 (3 to 729 agents)".into(),
        ));
    }
    let n = 3usize.pow(level);
    let word = |x: usize| -> Vec<usize> {
        let mut digits: Vec<usize> = (0..level)
            .scan(x, |rest, _| {
                let d = *rest % 3;
                *rest /= 3;
                Some(d)
            })
            .collect();
        digits.reverse();
        digits
    };
    let words: Vec<Vec<usize>> = (0..n).map(word).collect();
    let adjacent = |u: &[usize], v: &[usize]| {
        let Some(h) = (0..u.len()).find(|&i| u[i] != v[i]) else {
            return false;
        };
        (h + 1..u.len()).all(|t| u[t] == v[h] && v[t] == u[h])
    };
    let edges: Vec<(usize, usize)> = (0..n)
        .flat_map(|u| (u + 1..n).map(move |v| (u, v)))
        .filter(|&(u, v)| adjacent(&words[u], &words[v]))
        .collect();
    Ok(Topology::new("sierpinski", n, &edges))
}

/// A random `degree`-regular graph on `agents` vertices, drawn from a SplitMix64
/// stream seeded with `seed` by the pairing model (retrying until simple and
/// connected). Of `candidates` such graphs, the one with the smallest second
/// eigenvalue is kept, so the result is deterministic for a seed.
pub fn ramanujan(agents: usize, degree: usize, seed: u64, candidates: usize) -> Result<Topology, TopologyError> {
    if !(3..=MAX_AGENTS).contains(&agents) {
        return Err(TopologyError(format!(
            "a ramanujan topology has 3 to {MAX_AGENTS} agents"
        )));
    }
    if degree < 2 || degree >= agents || agents * degree % 2 == 1 {
        return Err(TopologyError(format!(
            "degree {degree} on {agents} agents: need 2 ≤ d < n and n·d even"
        )));
    }
    let mut stream = SplitMix64::new(seed);
    let mut best: Option<(f64, Vec<(usize, usize)>)> = None;
    for _ in 0..candidates.max(1) {
        let edges = random_regular(agents, degree, &mut stream)?;
        let lambda = second_eigenvalue(agents, &edges);
        if best.as_ref().is_none_or(|(b, _)| lambda < *b) {
            best = Some((lambda, edges));
        }
    }
    let (lambda, edges) = best.expect("at least one candidate");
    let mut topology = Topology::new("ramanujan", agents, &edges);
    let bound = 2.0 * ((degree - 1) as f64).sqrt();
    topology.spectrum = Some(Spectrum {
        degree,
        second_eigenvalue: lambda,
        ramanujan_bound: bound,
        is_ramanujan: lambda <= bound + 1e-9,
    });
    Ok(topology)
}

/// One simple connected d-regular graph by the pairing (configuration) model.
fn random_regular(n: usize, d: usize, stream: &mut SplitMix64) -> Result<Vec<(usize, usize)>, TopologyError> {
    for _ in 0..10_000 {
        let mut points: Vec<usize> = (0..n).flat_map(|v| std::iter::repeat_n(v, d)).collect();
        // Fisher–Yates with the deterministic stream.
        for i in (1..points.len()).rev() {
            let j = (stream.next_u64() % (i as u64 + 1)) as usize;
            points.swap(i, j);
        }
        let mut edges = BTreeSet::new();
        let simple = points.chunks(2).all(|p| {
            let (u, v) = (p[0].min(p[1]), p[0].max(p[1]));
            u != v && edges.insert((u, v))
        });
        if !simple {
            continue;
        }
        let edges: Vec<(usize, usize)> = edges.into_iter().collect();
        if Topology::new("candidate", n, &edges).diameter().is_some() {
            return Ok(edges);
        }
    }
    Err(TopologyError(format!(
        "no simple connected {d}-regular graph on {n} vertices found"
    )))
}

/// max(|λ₂|, |λₙ|) of the adjacency matrix of a regular graph (nalgebra's
/// symmetric eigen-decomposition; the trivial eigenvalue d is the largest).
pub fn second_eigenvalue(n: usize, edges: &[(usize, usize)]) -> f64 {
    let mut a = nalgebra::DMatrix::<f64>::zeros(n, n);
    for &(u, v) in edges {
        a[(u, v)] = 1.0;
        a[(v, u)] = 1.0;
    }
    let mut eigen: Vec<f64> = nalgebra::SymmetricEigen::new(a).eigenvalues.iter().copied().collect();
    eigen.sort_by(|x, y| y.total_cmp(x));
    let second = eigen.get(1).copied().unwrap_or(0.0).abs();
    let last = eigen.last().copied().unwrap_or(0.0).abs();
    second.max(last)
}

/// Which graph the agents form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// S(2,3): nine agents.
    Sierpinski,
    /// A random `degree`-regular expander on `agents` agents.
    Ramanujan {
        /// Agents.
        agents: usize,
        /// Degree.
        degree: usize,
    },
}

impl TopologyKind {
    /// The graph, built the same way on every host from the same seed.
    pub fn build(self, seed: u64) -> Result<Topology, String> {
        match self {
            TopologyKind::Sierpinski => sierpinski(2),
            TopologyKind::Ramanujan { agents, degree } => ramanujan(agents, degree, seed, 8),
        }
        .map_err(|e| e.to_string())
    }
}

/// Agent positions written as `4`, `4,7`, `0-8`, or a mix of them.
pub fn parse_positions(list: &str) -> Result<BTreeSet<usize>, String> {
    let mut positions = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a position or a range a-b");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a > 100_000 {
                    return Err(bad());
                }
                positions.extend(a..=b);
            }
            None => {
                positions.insert(part.parse().map_err(|_| bad())?);
            }
        }
    }
    if positions.is_empty() {
        return Err("no agent positions given".into());
    }
    Ok(positions)
}

//! RED/BLUE/GREEN vertex colouring: neighbours get different colours.
//!
//! An exact backtracking search (vertices in DSatur order, the first vertex fixed
//! to RED to break the symmetry of the three colours) finds a proper 3-colouring
//! whenever one exists, within a step budget. When the search proves there is none,
//! or runs out of budget, DSatur colours the graph greedily with the three colours,
//! each vertex taking the colour its coloured neighbours use least, and the edges
//! left joining equal colours are reported. Every tie is broken by vertex index, so
//! the answer is the same on every host.

use ramanujan_color::Color;

/// Work (vertex visits) before the exact search gives up: about a second.
pub const EXACT_WORK_BUDGET: u64 = 50_000_000;

/// How a colouring was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exact search: a proper 3-colouring.
    Exact,
    /// DSatur with three colours: best effort, conflicts listed.
    Dsatur,
}

/// A colouring of vertices `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coloring {
    /// The colour of each vertex.
    pub colors: Vec<Color>,
    /// How it was found.
    pub method: Method,
    /// `Some(true)` when a proper 3-colouring was found, `Some(false)` when the
    /// search proved none exists, `None` when the budget ran out first.
    pub three_colorable: Option<bool>,
    /// Edges whose ends share a colour, `(u, v)` with `u < v`, sorted.
    pub conflicts: Vec<(usize, usize)>,
}

/// Adjacency lists of a simple undirected graph on `0..n`.
fn adjacency(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for &(u, v) in edges {
        if u != v {
            adj[u].push(v);
            adj[v].push(u);
        }
    }
    for list in &mut adj {
        list.sort_unstable();
        list.dedup();
    }
    adj
}

/// Colours `0..n` joined by `edges` (every end below `n`; loops are ignored).
pub fn assign(n: usize, edges: &[(usize, usize)]) -> Coloring {
    let adj = adjacency(n, edges);
    let (colors, method, three_colorable) = match exact(&adj, EXACT_WORK_BUDGET) {
        Search::Found(colors) => (colors, Method::Exact, Some(true)),
        Search::Impossible => (dsatur(&adj), Method::Dsatur, Some(false)),
        Search::OutOfBudget => (dsatur(&adj), Method::Dsatur, None),
    };
    let mut conflicts: Vec<(usize, usize)> = (0..n)
        .flat_map(|u| adj[u].iter().filter(move |&&v| u < v).map(move |&v| (u, v)))
        .filter(|&(u, v)| colors[u] == colors[v])
        .collect();
    conflicts.sort_unstable();
    Coloring {
        colors: colors.into_iter().map(|c| Color::ALL[c as usize]).collect(),
        method,
        three_colorable,
        conflicts,
    }
}

enum Search {
    Found(Vec<u8>),
    Impossible,
    OutOfBudget,
}

/// The uncoloured vertex with the most distinct neighbour colours, then the most
/// uncoloured neighbours, then the lowest index.
fn pick(adj: &[Vec<usize>], colors: &[Option<u8>]) -> Option<usize> {
    (0..adj.len()).filter(|&v| colors[v].is_none()).max_by(|&a, &b| {
        let key = |v: usize| {
            let mut seen = [false; 3];
            let mut uncoloured = 0;
            for &w in &adj[v] {
                match colors[w] {
                    Some(c) => seen[c as usize] = true,
                    None => uncoloured += 1,
                }
            }
            (seen.iter().filter(|&&s| s).count(), uncoloured)
        };
        key(a).cmp(&key(b)).then(b.cmp(&a))
    })
}

/// Backtracking search. `budget` counts vertex visits (each pick looks at every
/// vertex), so the search is bounded in time whatever the graph.
fn exact(adj: &[Vec<usize>], budget: u64) -> Search {
    let n = adj.len();
    let mut colors: Vec<Option<u8>> = vec![None; n];
    // Each coloured vertex, in order, with the colour it has now.
    let mut trail: Vec<(usize, u8)> = Vec::with_capacity(n);
    let mut work = 0u64;
    let allowed = |colors: &[Option<u8>], v: usize, from: u8, depth: usize| {
        // The first vertex only gets colour 0: the three colours are interchangeable.
        let limit = if depth == 0 { 1 } else { 3 };
        (from..limit).find(|&c| adj[v].iter().all(|&w| colors[w] != Some(c)))
    };
    loop {
        work += n as u64 + 1;
        if work > budget {
            return Search::OutOfBudget;
        }
        let Some(v) = pick(adj, &colors) else {
            return Search::Found(colors.into_iter().map(|c| c.expect("all coloured")).collect());
        };
        if let Some(c) = allowed(&colors, v, 0, trail.len()) {
            colors[v] = Some(c);
            trail.push((v, c));
            continue;
        }
        // Dead end: undo the latest choices until one has another colour to try.
        loop {
            let Some((u, c)) = trail.pop() else {
                return Search::Impossible;
            };
            colors[u] = None;
            if let Some(next) = allowed(&colors, u, c + 1, trail.len()) {
                colors[u] = Some(next);
                trail.push((u, next));
                break;
            }
        }
    }
}

/// DSatur with three colours: each vertex, in DSatur order, takes the colour its
/// coloured neighbours use least (lowest colour on ties).
fn dsatur(adj: &[Vec<usize>]) -> Vec<u8> {
    let mut colors = vec![None; adj.len()];
    while let Some(v) = pick(adj, &colors) {
        let mut used = [0usize; 3];
        for &w in &adj[v] {
            if let Some(c) = colors[w] {
                used[c as usize] += 1;
            }
        }
        let best = (0..3u8).min_by_key(|&c| (used[c as usize], c)).expect("three colours");
        colors[v] = Some(best);
    }
    colors.into_iter().map(|c| c.expect("all coloured")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proper(n: usize, edges: &[(usize, usize)]) -> Coloring {
        let c = assign(n, edges);
        assert_eq!(c.method, Method::Exact);
        assert!(c.conflicts.is_empty());
        for &(u, v) in edges {
            assert_ne!(c.colors[u], c.colors[v]);
        }
        c
    }

    #[test]
    fn odd_cycles_and_wheels() {
        let c5: Vec<_> = (0..5).map(|i| (i, (i + 1) % 5)).collect();
        assert_eq!(proper(5, &c5).colors[0], Color::Red);
        // The wheel W5 (hub joined to an odd cycle) needs four colours.
        let mut w5 = c5.clone();
        w5.extend((0..5).map(|i| (i, 5)));
        let c = assign(6, &w5);
        assert_eq!((c.method, c.three_colorable), (Method::Dsatur, Some(false)));
        assert_eq!(c.conflicts.len(), 1, "{c:?}");
    }

    #[test]
    fn k4_has_one_conflict_at_best() {
        let k4 = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
        let c = assign(4, &k4);
        assert_eq!(c.three_colorable, Some(false));
        assert_eq!(c.conflicts.len(), 1);
    }

    /// Brute force over all 3^n colourings.
    fn colorable_by_brute_force(n: usize, edges: &[(usize, usize)]) -> bool {
        (0..3usize.pow(n as u32)).any(|mut code| {
            let colors: Vec<usize> = (0..n)
                .map(|_| {
                    let c = code % 3;
                    code /= 3;
                    c
                })
                .collect();
            edges.iter().all(|&(u, v)| u == v || colors[u] != colors[v])
        })
    }

    proptest::proptest! {
        /// On random graphs of up to 9 vertices, the exact search finds a proper
        /// 3-colouring exactly when brute force says one exists.
        #[test]
        fn exact_search_agrees_with_brute_force(
            n in 1usize..=9,
            raw in proptest::collection::vec((0usize..9, 0usize..9), 0..24),
        ) {
            let edges: Vec<(usize, usize)> = raw.into_iter().map(|(u, v)| (u % n, v % n)).collect();
            let c = assign(n, &edges);
            let expected = colorable_by_brute_force(n, &edges);
            proptest::prop_assert_eq!(c.three_colorable, Some(expected));
            proptest::prop_assert_eq!(c.conflicts.is_empty(), expected);
            for &(u, v) in &edges {
                proptest::prop_assert!(u == v || !expected || c.colors[u] != c.colors[v]);
            }
        }
    }

    #[test]
    fn budget_exhaustion_falls_back_to_dsatur() {
        let k4 = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
        assert!(matches!(exact(&adjacency(4, &k4), 3), Search::OutOfBudget));
    }
}

//! Topologies: S(2,3) and the 48-agent expander.

use ramanujan_agent::topology::{ramanujan, sierpinski};

#[test]
fn sierpinski_s23_has_9_vertices_12_edges_diameter_3_and_a_proper_3_colouring() {
    let s = sierpinski(2).unwrap();
    assert_eq!(s.len(), 9);
    assert_eq!(s.edges().len(), 12);
    assert_eq!(s.diameter(), Some(3));
    assert!(s.color_conflicts.is_empty());
    for (u, v) in s.edges() {
        assert_ne!(s.colors[u], s.colors[v], "{u}-{v}");
    }
    // S(n,3) has 3^n vertices, 3(3^n − 1)/2 edges and diameter 2^n − 1.
    for level in 1..=4u32 {
        let s = sierpinski(level).unwrap();
        let n = 3usize.pow(level);
        assert_eq!((s.len(), s.edges().len()), (n, 3 * (n - 1) / 2));
        assert_eq!(s.diameter(), Some(2usize.pow(level) - 1));
    }
}

#[test]
fn expander_of_48_agents_is_compared_with_the_ramanujan_bound() {
    let t = ramanujan(48, 4, 1069, 8).unwrap();
    assert_eq!(t.len(), 48);
    assert!(t.neighbors.iter().all(|n| n.len() == 4), "4-regular");
    assert!(t.diameter().is_some(), "connected");
    let s = t.spectrum.unwrap();
    assert!((s.ramanujan_bound - 2.0 * 3f64.sqrt()).abs() < 1e-12);
    eprintln!(
        "48 agents, d = 4: λ = {:.4}, bound 2√3 = {:.4}, Ramanujan: {}",
        s.second_eigenvalue, s.ramanujan_bound, s.is_ramanujan
    );
    assert!(s.second_eigenvalue < 4.0, "a connected non-bipartite graph has λ < d");
    assert_eq!(s.is_ramanujan, s.second_eigenvalue <= s.ramanujan_bound + 1e-9);
    // Deterministic for a seed.
    assert_eq!(ramanujan(48, 4, 1069, 8).unwrap(), t);
    // Neighbours mostly differ in colour (exact when 3-colourable).
    assert!(t.color_conflicts.len() <= t.edges().len() / 4);
}

#[test]
fn bad_topologies_are_refused() {
    assert!(sierpinski(0).is_err());
    assert!(ramanujan(7, 3, 1, 1).is_err(), "n·d odd");
    assert!(ramanujan(4, 4, 1, 1).is_err(), "d ≥ n");
    assert!(ramanujan(5000, 3, 1, 1).is_err());
}

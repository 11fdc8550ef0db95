//! Every type's merge is commutative, associative and idempotent, contains
//! both of its inputs, and a cached merge answers exactly what a fresh one does.
//! Idempotence and inflation are checked against the merge itself
//! ([`merge_uncached`]: no shortcut for equal inputs, no cache), and "contains"
//! by each type's own order (clocks, counts, facts, Yjs state vectors), never
//! by the merge; a merge that drops a side fails it (see the mutant test).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crdt_service::merge::{Merger, Outcome, identity, merge_uncached};
use crdts::{CmRDT, GCounter, LWWReg, MVReg, Orswot, PNCounter, VClock};
use proptest::prelude::*;
use ramanujan_core::materialize::expr_terms;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Facts, ReplicaState};
use serde_json::{Value, json};
use yrs::updates::decoder::Decode;
use yrs::{Array, ClientID, Doc, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

const ACTORS: [&str; 9] = ["a", "b", "c", "b1", "b2", "b3", "c1", "c2", "c3"];

/// A state of `crdt_type` built by real operations from `ops` (actor, amount).
fn state(crdt_type: &str, ops: &[(usize, u8)]) -> Value {
    match crdt_type {
        "GCounter" => {
            let mut c = GCounter::<String>::new();
            for &(a, n) in ops {
                for _ in 0..n % 4 {
                    c.apply(c.inc(ACTORS[a].to_string()));
                }
            }
            json!(c)
        }
        "PNCounter" => {
            let mut c = PNCounter::<String>::new();
            for &(a, n) in ops {
                let op = if n % 2 == 0 {
                    c.inc(ACTORS[a].to_string())
                } else {
                    c.dec(ACTORS[a].to_string())
                };
                c.apply(op);
            }
            json!(c)
        }
        "LWWRegister" => {
            // One value per marker, as writers that never reuse a marker produce.
            let marker = ops.iter().map(|&(a, n)| a as u64 * 100 + n as u64).max().unwrap_or(0);
            // Markers are unique per write (actor and count), values follow them.
            json!(LWWReg {
                val: json!(format!("v{marker}")),
                marker
            })
        }
        "MVRegister" => {
            let mut r = MVReg::<Value, String>::new();
            for &(a, n) in ops {
                let ctx = r.read_ctx().derive_add_ctx(ACTORS[a].to_string());
                r.apply(r.write(json!(n), ctx));
            }
            json!(r)
        }
        "ORSet" => {
            let mut set = Orswot::<String, String>::new();
            for &(a, n) in ops {
                let member = format!("m{}", n % 4);
                let op = if n % 3 == 2 {
                    set.rm(member, set.read_ctx().derive_rm_ctx())
                } else {
                    set.add(member, set.read_ctx().derive_add_ctx(ACTORS[a].to_string()))
                };
                set.apply(op);
            }
            json!(set)
        }
        "CausalContext" => {
            let mut c = VClock::<String>::new();
            for &(a, n) in ops {
                for _ in 0..n % 3 {
                    c.apply(c.inc(ACTORS[a].to_string()));
                }
            }
            json!(c)
        }
        "EGraph" => {
            let mut r = ReplicaState::new();
            for &(a, n) in ops {
                let mut facts = Facts::default();
                expr_terms(&parse_expr(&format!("(+ x{} {})", n % 5, a)).unwrap(), &mut facts);
                r.record(ACTORS[a], facts).unwrap();
            }
            json!(r)
        }
        "TextCRDT" | "Map" | "Array" => json!(yjs_state(crdt_type, ops)),
        other => panic!("no generator for {other}"),
    }
}

/// A Yjs document edited by `ops`, each by its actor's own client (ids 1..):
/// text inserts and deletes, map sets and removes, array inserts and deletes.
fn yjs_state(crdt_type: &str, ops: &[(usize, u8)]) -> String {
    let mut update = Doc::new().transact().encode_state_as_update_v1(&StateVector::default());
    for &(a, n) in ops {
        let doc = Doc::with_options(Options {
            client_id: ClientID::new(a as u64 + 1),
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        match crdt_type {
            "TextCRDT" => {
                let text = txn.get_or_insert_text("text");
                let len = text.len(&txn);
                if n % 3 == 2 && len > 0 {
                    text.remove_range(&mut txn, n as u32 % len, 1);
                } else {
                    text.insert(&mut txn, n as u32 % (len + 1), ["é", "x😀", "ab"][n as usize % 3]);
                }
            }
            "Map" => {
                let map = txn.get_or_insert_map("map");
                let key = format!("k{}", n % 4);
                if n % 3 == 2 {
                    map.remove(&mut txn, &key);
                } else {
                    map.insert(&mut txn, key, n as i64);
                }
            }
            _ => {
                let array = txn.get_or_insert_array("array");
                let len = array.len(&txn);
                if n % 3 == 2 && len > 0 {
                    array.remove(&mut txn, n as u32 % len);
                } else {
                    array.insert(&mut txn, n as u32 % (len + 1), n as i64);
                }
            }
        }
        update = txn.encode_state_as_update_v1(&StateVector::default());
    }
    BASE64.encode(update)
}

const TYPES: [&str; 10] = [
    "ORSet",
    "TextCRDT",
    "Map",
    "Array",
    "GCounter",
    "PNCounter",
    "LWWRegister",
    "MVRegister",
    "CausalContext",
    "EGraph",
];

fn merged(crdt_type: &str, states: &[&Value]) -> Value {
    let (body, _) = Merger::new(16)
        .merge(crdt_type, states.iter().map(|s| (*s).clone()).collect(), None)
        .unwrap();
    serde_json::from_slice::<Value>(&body).unwrap()["state"].clone()
}

/// Whether `big` contains everything `small` holds, by the type's own order:
/// a merge's answer must contain each input.
fn contains(crdt_type: &str, big: &Value, small: &Value) -> bool {
    // Every actor's count in `small` is at most its count in `big`.
    let dots_cover = |big: &Value, small: &Value| {
        small.as_object().is_none_or(|dots| {
            dots.iter()
                .all(|(actor, n)| big.get(actor).and_then(Value::as_u64).unwrap_or(0) >= n.as_u64().unwrap())
        })
    };
    match crdt_type {
        "GCounter" => dots_cover(&big["inner"]["dots"], &small["inner"]["dots"]),
        "PNCounter" => ["p", "n"]
            .iter()
            .all(|s| dots_cover(&big[s]["inner"]["dots"], &small[s]["inner"]["dots"])),
        "CausalContext" => dots_cover(&big["dots"], &small["dots"]),
        "LWWRegister" => big["marker"].as_u64() >= small["marker"].as_u64(),
        "MVRegister" => {
            let read = |v: &Value| {
                serde_json::from_value::<MVReg<Value, String>>(v.clone())
                    .unwrap()
                    .read_ctx()
            };
            read(big).add_clock >= read(small).add_clock
        }
        "ORSet" => {
            let read = |v: &Value| {
                serde_json::from_value::<Orswot<String, String>>(v.clone())
                    .unwrap()
                    .read_ctx()
            };
            read(big).add_clock >= read(small).add_clock
        }
        "EGraph" => {
            let read = |v: &Value| serde_json::from_value::<ReplicaState>(v.clone()).unwrap();
            let (big, small) = (read(big), read(small));
            small.terms_missing_from(&big).is_empty()
                && small.equalities_missing_from(&big).next().is_none()
                && small.refutations().all(|r| big.is_refuted(r.key()))
                && big.clock().dominates(small.clock())
        }
        _ => {
            let vector = |v: &Value| {
                let update = BASE64.decode(v.as_str().unwrap()).unwrap();
                let doc = Doc::new();
                doc.transact_mut()
                    .apply_update(Update::decode_v1(&update).unwrap())
                    .unwrap();
                doc.transact().state_vector()
            };
            let (big, small) = (vector(big), vector(small));
            small.iter().all(|(client, &clock)| big.get(client) >= clock)
        }
    }
}

/// Equal content, however encoded.
fn same(crdt_type: &str, a: &Value, b: &Value) -> bool {
    identity(crdt_type, a.clone()).unwrap() == identity(crdt_type, b.clone()).unwrap()
}

/// The same operations by the writers of one branch (actors `offset..offset+3`).
fn branch(ops: &[(usize, u8)], offset: usize) -> Vec<(usize, u8)> {
    ops.iter().map(|&(a, n)| (a + offset, n)).collect()
}

fn ops() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0..3usize, 0..8u8), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_laws_hold_for_every_type(t in 0..TYPES.len(), a in ops(), b in ops(), c in ops()) {
        let ty = TYPES[t];
        // Three replicas that share a history (`a`) and then diverge, each
        // branch with writers of its own (as real replicas have).
        let sa = state(ty, &a);
        let sb = state(ty, &[a.clone(), branch(&b, 3)].concat());
        let sc = state(ty, &[a, branch(&c, 6)].concat());
        prop_assert_eq!(merged(ty, &[&sa, &sb]), merged(ty, &[&sb, &sa]), "commutative");
        prop_assert_eq!(merged(ty, &[&sb, &sc]), merged(ty, &[&sc, &sb]), "commutative when concurrent");
        let left = merged(ty, &[&merged(ty, &[&sa, &sb]), &sc]);
        let right = merged(ty, &[&sa, &merged(ty, &[&sb, &sc])]);
        prop_assert_eq!(&left, &right, "associative");
        prop_assert_eq!(merged(ty, &[&sa, &sb, &sc]), left, "n-ary = pairwise");
        // The merge itself, with no shortcut for equal inputs.
        for s in [&sa, &sb, &sc] {
            prop_assert!(same(ty, &merge_uncached(ty, vec![s.clone(), s.clone()]).unwrap(), s), "idempotent");
        }
        let ab = merge_uncached(ty, vec![sb.clone(), sc.clone()]).unwrap();
        prop_assert!(contains(ty, &ab, &sb) && contains(ty, &ab, &sc), "contains both inputs");
        for s in [&sb, &sc] {
            prop_assert!(same(ty, &merge_uncached(ty, vec![ab.clone(), s.clone()]).unwrap(), &ab), "inflation");
        }
        // The service's answer is the merge's.
        prop_assert!(same(ty, &merged(ty, &[&sb, &sc]), &ab));
        prop_assert!(same(ty, &merged(ty, &[&merged(ty, &[&sa, &sb]), &sb]), &merged(ty, &[&sa, &sb])), "absorbs");
    }

    #[test]
    fn a_cached_merge_answers_exactly_what_a_fresh_one_does(t in 0..TYPES.len(), a in ops(), b in ops()) {
        let ty = TYPES[t];
        let (sa, sb) = (state(ty, &a), state(ty, &branch(&b, 3)));
        let merger = Merger::new(16);
        let (first, _) = merger.merge(ty, vec![sa.clone(), sb.clone()], None).unwrap();
        // The same inputs in another order and another spelling (re-serialised) hit.
        let respelled: Value = serde_json::from_str(&sa.to_string()).unwrap();
        let (second, outcome) = merger.merge(ty, vec![sb.clone(), respelled], None).unwrap();
        let (fresh, _) = Merger::new(16).merge(ty, vec![sa, sb], None).unwrap();
        prop_assert_eq!(&second, &fresh);
        prop_assert_eq!(&first, &fresh);
        prop_assert!(matches!(outcome, Outcome::Hit | Outcome::Identical), "{:?}", outcome);
    }
}

/// The laws above catch a merge that drops a side (it keeps the first state):
/// for every type, on two concurrent states, "contains both inputs" fails for
/// the mutant while the real merge passes.
#[test]
fn a_merge_that_drops_a_side_breaks_the_contains_law_for_every_type() {
    let drop_second = |states: Vec<Value>| states[0].clone();
    for ty in TYPES {
        let sb = state(ty, &[(3, 4), (4, 5), (5, 1)]);
        let sc = state(ty, &[(6, 4), (7, 5), (8, 1)]);
        let real = merge_uncached(ty, vec![sb.clone(), sc.clone()]).unwrap();
        assert!(contains(ty, &real, &sb) && contains(ty, &real, &sc), "{ty}");
        let mutant = drop_second(vec![sb.clone(), sc.clone()]);
        assert!(
            !contains(ty, &mutant, &sc),
            "{ty}: the mutant passes, the law checks nothing"
        );
        // And a merge that doubles what it is given breaks idempotence where
        // counts are kept.
        if ty == "GCounter" {
            let doubled = merge_uncached(ty, vec![sb.clone(), sb.clone()]).unwrap();
            let mut mutant = doubled.clone();
            for n in mutant["inner"]["dots"].as_object_mut().unwrap().values_mut() {
                *n = json!(n.as_u64().unwrap() * 2);
            }
            assert!(same(ty, &doubled, &sb) && !same(ty, &mutant, &sb));
        }
    }
}

#[test]
fn the_four_cases_are_counted_apart() {
    let merger = Merger::new(16);
    let small = state("GCounter", &[(0, 1)]);
    let big = state("GCounter", &[(0, 3), (1, 2)]);
    let other = state("GCounter", &[(2, 2)]);
    assert_eq!(
        merger
            .merge("GCounter", vec![small.clone(), small.clone()], None)
            .unwrap()
            .1,
        Outcome::Identical
    );
    assert_eq!(
        merger
            .merge("GCounter", vec![small.clone(), big.clone()], None)
            .unwrap()
            .1,
        Outcome::Contained
    );
    assert_eq!(
        merger
            .merge("GCounter", vec![big.clone(), other.clone()], None)
            .unwrap()
            .1,
        Outcome::Miss
    );
    assert_eq!(
        merger.merge("GCounter", vec![other, big], None).unwrap().1,
        Outcome::Hit
    );
    let stats = merger.stats();
    assert_eq!(
        (stats.identical, stats.contained, stats.misses, stats.hits),
        (1, 1, 1, 1)
    );
    assert!((stats.hit_ratio - 1.0 / 3.0).abs() < 1e-9);
}

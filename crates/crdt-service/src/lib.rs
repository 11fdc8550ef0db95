//! # crdt-service
//!
//! Not built yet (see issue #4); this crate holds the place of the component
//! in the workspace and will serve `/crdt/...`.
//!
//! What it will do: A CRDT merge service: `POST /crdt/merge`, `/crdt/diff`, `/crdt/apply`, `GET /crdt/types` and `/crdt/stats` over TextCRDT, Map/JSON and Array documents (on yrs, Yjs v1 updates), GCounter, PNCounter, LWWRegister, MVRegister and ORSet (on `crdts`), vector clocks and the core's replicated e-graph, with merges memoised in a bounded LRU keyed by a canonical form of the inputs.

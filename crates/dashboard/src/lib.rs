//! # dashboard
//!
//! Not built yet (a later issue); this crate holds the place of the component
//! in the workspace and will serve `/dashboard/... (plus /api/metrics and /api/timeline)`.
//!
//! What it will do: The live dashboard: the agent network, its colours, convergence and timeline, served as a web page with JSON feeds.

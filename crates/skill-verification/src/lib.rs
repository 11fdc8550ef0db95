//! # skill-verification
//!
//! Not built yet (a later issue); this crate holds the place of the component
//! in the workspace and will serve `/verify/... and /skills/...`.
//!
//! What it will do: Skill verification with 17 verifier agents: each verifier checks one kind of claim an agent makes about its skills (rules it knows, equalities it derived), and the service aggregates their verdicts.

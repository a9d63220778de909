//! MasterExportSet: a whole Mux environment (or a selection of it) exported and archived, one
//! MasterExport child per asset, a bounded number at work at once.
//!
//! Pure parts: `selector` (which assets), `pattern` (the destination of each), `plan` (which
//! children to create now, and the counts), `summary` (status and conditions). I/O at the
//! edges: `discovery` (listing the environment through the Mux client), `reconcile` (the set's
//! controller).

pub mod children;
pub mod copying;
pub mod discovery;
pub mod manifest;
pub mod manifests;
pub mod metrics;
pub mod pattern;
pub mod plan;
pub mod reconcile;
pub mod rescan;
pub mod resource;
pub mod run;
pub mod selector;
pub mod store;
pub mod summary;
pub mod verify;

//! mux-master-operator: keeps the masters of Mux assets downloadable, fresh and archived.
//!
//! Layers, top to bottom (each depends only on those below it):
//! - `controller`: reads the world and decides (pure policy + thin I/O);
//! - `copy`: the copy Job's program; `webhooks`, `metrics`, `server`, `leader`: the edges;
//! - `resource`: the MasterExport types (the CRD comes from them);
//! - the `mux` crate: the typed Mux API client (knows nothing of Kubernetes).
//!
//! The emulator (`mux-sim`) and the test harness (`testenv`) are crates of their own, used by
//! the tests, benches and demo only: the operator's normal build contains neither.

pub mod controller;
pub mod copy;
pub mod crd;
pub mod exportset;
pub mod leader;
pub mod metrics;
pub mod resource;
pub mod server;
pub mod webhooks;

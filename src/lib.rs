//! mux-master-operator: keeps the masters of Mux assets downloadable, fresh and archived.
//!
//! Layers, top to bottom (each depends only on those below it):
//! - `controller`: reads the world and decides (pure policy + thin I/O);
//! - `mux`: the typed Mux API client (knows nothing of Kubernetes);
//! - `sim`: `mux-sim`, the Mux emulator, sharing only the wire types with `mux`;
//! - `testenv`: real local control plane (etcd, kube-apiserver, MinIO, mux-sim) for tests,
//!   benchmarks and the demo.

pub mod controller;
pub mod copy;
pub mod crd;
pub mod duration;
pub mod leader;
pub mod metrics;
pub mod mux;
pub mod resource;
pub mod server;
pub mod sim;
pub mod testenv;
pub mod tls;
pub mod webhooks;

//! A real local control plane for tests, benchmarks and the demo: etcd, kube-apiserver, MinIO
//! and mux-sim, started as real processes, much as controller-runtime's envtest does for Go
//! operators.
//!
//! - [`ControlPlane`]: etcd + kube-apiserver with RBAC, ServiceAccount tokens, an admin
//!   kubeconfig, clients for the admin or impersonating a ServiceAccount, and a fresh namespace
//!   per test. [`ControlPlane::shared`] starts one per process for all tests to share.
//! - [`Minio`]: an S3 server on a scratch folder, with known credentials and a bucket.
//! - [`GcsEmulator`] and [`Azurite`]: Google Cloud Storage and Azure Blob Storage, emulated, each
//!   with a bucket (container).
//! - [`MuxSim`]: the Mux emulator, from a binary path the caller gives.
//! - [`node::Node`]: a real node on the control plane (containerd, kubelet, controller-manager,
//!   scheduler); where it cannot run, [`kubelet`] plays it.
//! - [`tools`]: where the binaries built by `make tools` are.
//!
//! Every component waits until it answers its own readiness endpoint, and is stopped (and its
//! scratch folder removed) when dropped, or by a watchdog process when the test process dies
//! without dropping it: a panic, `process::exit`, a signal, or a `static` never dropped.
//!
//! Processes are shared between tests; `kube::Client`s are not, because a client belongs to the
//! tokio runtime it was built on and `#[tokio::test]` makes one runtime per test. So build a
//! client per test with [`ControlPlane::client`].

pub mod azurite;
pub mod bins;
mod controlplane;
mod credentials;
mod error;
pub mod fixtures;
mod gcs;
pub mod kubelet;
pub mod leftovers;
mod minio;
mod muxsim;
pub mod node;
mod process;
mod ready;
mod scratch;
pub mod spawner;
pub mod tools;

pub use azurite::Azurite;
pub use controlplane::{ControlPlane, NAMESPACE_LABEL};
pub use error::{Error, Result};
pub use gcs::GcsEmulator;
pub use minio::Minio;
pub use muxsim::MuxSim;
pub use tools::Tool;

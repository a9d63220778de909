//! The Mux API: wire types, the typed client, rate limiting and webhook signatures.
//! Knows nothing of Kubernetes.

pub mod client;
pub mod duration;
pub mod error;
pub mod ratelimit;
pub mod signature;
pub mod tls;
pub mod types;

pub use client::{
    Credentials, Deleted, MuxClient, MuxClients, MuxConfig, RequestObserver, RequestRecord,
};
pub use error::{ErrorKind, MuxError};
pub use ratelimit::Rate;

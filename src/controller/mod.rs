//! The MasterExport controller, by concern (kube-runtime's layout):
//!
//! - pure decisions: `policy` (access, URLs, timing, failures; the phase table is in its
//!   docs), `copy_policy` (the archive copy), `conditions` (kstatus conditions);
//! - `context`: what every reconcile shares, and the options it is built from;
//! - `error`: what can go wrong, and the condition reason each failure shows;
//! - `publisher`: the URL Secret, then the status, in that order;
//! - `events`: which Events a change calls for, and publishing them (`recorder`: Events
//!   kept as series with a small memory);
//! - `mux_calls`: the reads and writes at Mux;
//! - `copy_job`: the copy Job, built typed, observed, created alone;
//! - `deletion`: deleting the asset from Mux after a verified copy (`policy::deletion` decides);
//! - `sweeper` and `expiries`: the record of expiries, and the task withdrawing expired URLs;
//! - `index` and `wakeup`: which resources a webhook wakes; `snapshots`: the asset a webhook
//!   carries, used instead of a GET when it is newer than what was recorded;
//! - `watches`: the owned Jobs and URL Secrets, by metadata, and what is cached;
//! - `reconcile`: the apply / converge / cleanup flow; `run`: the wiring.

pub mod conditions;
pub mod context;
pub mod copy_job;
pub mod copy_policy;
pub mod copy_progress;
pub mod deletion;
pub mod error;
pub mod events;
pub mod expiries;
pub mod index;
pub mod mux_calls;
pub mod policy;
pub mod publisher;
pub mod reconcile;
pub mod recorder;
pub mod run;
pub mod snapshots;
pub mod sweeper;
pub mod tokens;
pub mod wakeup;
pub mod watches;

pub use context::{Context, Options};
pub use error::Error;
pub use reconcile::{error_policy, reconcile};

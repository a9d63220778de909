//! The MasterExport controller: decisions in `policy` (pure), conditions in `conditions`
//! (pure), the Kubernetes and Mux I/O in `reconcile`, wiring in `run`.

pub mod conditions;
pub mod copy_job;
pub mod copy_policy;
pub mod expiries;
pub mod index;
pub mod policy;
pub mod reconcile;
pub mod run;
pub mod wakeup;

//! The Helm chart (`charts/mux-master-operator`): linted, rendered and checked offline against the
//! Kubernetes schemas, its values refused with a message when wrong, and installed into the real
//! apiserver, where the operator runs as the chart's ServiceAccount (by impersonation) to prove
//! that the RBAC is enough, and is refused what it should not have, to prove it is not too much.
//!
//! One test binary, a module per thing proved:
//! - `files`: the chart's own files (its CRD, `helm lint`, the schemas, refused values);
//! - `rendered`: what it renders (labels, Pod Security, image, leader election, RBAC, webhooks,
//!   variables the operator reads);
//! - `installed`: installed into the real apiserver in both RBAC modes (helpers in `release`);
//! - `on_node`: installed with the built image on the real node, the operator running as its pod.
//!
//! `helm` holds the offline helpers: helm itself, rendering, value sets, the schema validator.

mod files;
mod helm;
mod installed;
mod on_node;
mod release;
mod rendered;

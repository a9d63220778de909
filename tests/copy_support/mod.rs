//! What the copier's integration tests (`tests/copy*.rs`) share: mux-sim and its masters, the
//! copier as a real process, and MinIO as the tests read it back.
// Each test target uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod clouds;
pub mod copier;
pub mod master;
pub mod store;

pub use clouds::Cloud;
pub use copier::{Copier, Outcome, Running};
pub use master::{Master, start_sim};
pub use store::{
    assert_no_staging_left, assert_nothing_left, exists, file_sha256, keys_under, minio,
    object_sha256, recorded_digest, store, uploads_in_progress,
};

pub const MIB: u64 = 1 << 20;

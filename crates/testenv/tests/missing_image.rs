//! Copy Jobs on the real node without the operator's image: the first use says "run `make
//! image`" at once, instead of every copy pod waiting in ErrImageNeverPull until a timeout.
//!
//! A binary of its own: the node mode is decided once per process, and this one must decide it
//! with the image archive pointed somewhere empty.

use testenv::fixtures::kubelet;
use testenv::node::Node;

#[test]
fn copy_jobs_on_a_node_without_the_operators_image_fail_at_once_saying_make_image() {
    if let Some(reason) = Node::unavailable() {
        eprintln!("node: not tested, no node can run here: {reason}");
        return;
    }
    let missing = std::env::temp_dir().join("mmo-no-such-image.oci.tar");
    assert!(!missing.exists());
    // SAFETY: this binary has one test and sets the variable before any other thread reads it.
    unsafe { std::env::set_var("MMO_IMAGE_ARCHIVE", &missing) };
    let outcome = std::panic::catch_unwind(kubelet::mode);
    let message = match outcome {
        Ok(_) => panic!("the node mode was decided although the image is missing"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(
        message.contains("make image") && message.contains(&missing.display().to_string()),
        "the message should name the archive and the command: {message:?}"
    );
}

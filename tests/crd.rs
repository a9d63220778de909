//! The committed CRD is exactly what the operator generates from its types.

#[test]
fn the_committed_crd_matches_the_generated_one() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .arg("crd")
        .output()
        .expect("the operator runs");
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/masterexport.yaml"
    ))
    .unwrap();
    assert!(
        generated == committed,
        "crds/masterexport.yaml is stale: run `make crd` and commit it"
    );
}

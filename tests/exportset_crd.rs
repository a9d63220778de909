//! The committed MasterExportSet CRD (and the chart's copy) is what the operator generates.

fn generated() -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .args(["crd", "--kind", "MasterExportSet"])
        .output()
        .expect("the operator runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_committed_set_crd_matches_the_generated_one() {
    assert!(
        generated() == committed("crds/masterexportset.yaml"),
        "crds/masterexportset.yaml is stale: run `make crd` and commit it"
    );
}

#[test]
fn the_chart_ships_the_same_set_crd() {
    assert!(
        committed("charts/mux-master-operator/crds/masterexportset.yaml")
            == committed("crds/masterexportset.yaml"),
        "the chart's masterexportset.yaml differs: cp crds/masterexportset.yaml charts/mux-master-operator/crds/"
    );
}

#[test]
fn crd_without_a_kind_still_prints_the_master_export_crd() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .arg("crd")
        .output()
        .expect("the operator runs");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("name: masterexports.masterexport.io"),
        "{text}"
    );
}

#[test]
fn the_set_example_reads_as_a_set_with_a_valid_pattern() {
    use mux_master_operator::exportset::pattern::Pattern;
    use mux_master_operator::exportset::resource::MasterExportSet;
    let set: MasterExportSet =
        serde_yaml::from_str(&committed("examples/environment-archive.yaml")).unwrap();
    let destination = set.spec.template.destination.expect("the example archives");
    Pattern::parse(&destination.url).expect("the example's pattern is valid");
    assert!(set.spec.template.after_copy.unwrap().revoke_access);
}

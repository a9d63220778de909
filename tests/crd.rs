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

/// A `file://` destination with `.` or `..` segments, plain or percent-encoded, is refused by
/// the CRD's CEL rule on the real apiserver, with a message that says what to write instead;
/// the same path written plainly is accepted.
#[tokio::test]
async fn a_file_destination_with_dot_segments_is_refused_at_apply_time() {
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    use mux_master_operator::resource::MasterExport;
    use testenv::fixtures as support;

    let control_plane = testenv::ControlPlane::shared().expect("the control plane starts");
    let client = control_plane.client().expect("a client");
    support::install_crd(&client).await;
    let namespace = control_plane.fresh_namespace("crd-dots").await.unwrap();
    let resource = ApiResource::erase::<MasterExport>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    let create = |name: String, url: &str| {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "masterexport.io/v1alpha1",
            "kind": "MasterExport",
            "metadata": {"name": name},
            "spec": {
                "source": {"assetId": "a1"},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {"url": url, "volume": {"claimName": "archive", "mountPath": "/archive"}},
            },
        }))
        .unwrap();
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &object)
                .await
                .map(|_| ())
        }
    };
    let escaping = [
        "file:///archive/in/../../etc/k.mp4",
        "file:///archive/..",
        "file:///archive/%2e%2e/k.mp4",
        "file:///archive/%2E%2e/k.mp4",
        "file:///archive/.%2e/k.mp4",
        "file:///archive/./k.mp4",
        "file:///archive/a/..?x=1",
    ];
    for (i, url) in escaping.into_iter().enumerate() {
        let error = create(format!("bad-{i}"), url).await.expect_err(url);
        let text = error.to_string();
        assert!(
            text.contains("must not have '.' or '..' path segments")
                && text.contains("below destination.volume.mountPath"),
            "{url}: {text}"
        );
    }
    // Dots inside a name are not segments.
    for (i, url) in [
        "file:///archive/k..mp4",
        "file:///archive/.hidden/k.mp4",
        "file:///archive/a.../k.mp4",
    ]
    .into_iter()
    .enumerate()
    {
        create(format!("good-{i}"), url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

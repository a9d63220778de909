//! The destination's object store as the operator process opens it (the copy Job opens its
//! own): the store settings of a `Destination` and the credentials of its Secret, read from the
//! apiserver and handed to `object_store` in memory. Used to write a set's manifest, and to
//! check an archived object again before its asset is deleted from Mux.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::resource::Destination;

/// The store holding `url` (an object of `destination`'s store) and the object's path in it.
pub async fn open(
    client: &Client,
    namespace: &str,
    destination: &Destination,
    url: &str,
) -> Result<(Box<dyn ObjectStore>, Path), String> {
    let mut options: Vec<(String, String)> = Vec::new();
    if let Some(secret) = &destination.credentials_secret_ref {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let found = secrets
            .get(&secret.name)
            .await
            .map_err(|e| format!("the destination's Secret {}: {e}", secret.name))?;
        for (key, value) in found.data.unwrap_or_default() {
            if let Ok(value) = String::from_utf8(value.0) {
                options.push((key, value.trim().to_string()));
            }
        }
    }
    if url.starts_with("s3://") {
        if let Some(endpoint) = &destination.endpoint {
            options.push(("aws_endpoint".into(), endpoint.clone()));
            if endpoint.starts_with("http://") {
                options.push(("allow_http".into(), "true".into()));
            }
        }
        if let Some(region) = &destination.region {
            options.push(("aws_region".into(), region.clone()));
        }
        let virtual_hosted = !destination.path_style && destination.endpoint.is_none();
        options.push((
            "aws_virtual_hosted_style_request".into(),
            virtual_hosted.to_string(),
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    object_store::parse_url_opts(&parsed, options).map_err(|e| format!("{url}: {e}"))
}

//! The cloud rows of the copy benchmark: each destination in an emulator of its own (the GCS
//! emulator, Azurite), with the copier's environment for it.

pub enum Cloud {
    Gcs,
    Azure,
}

/// A destination in an emulator of its own (kept alive while the copy runs): its URL and the
/// copier's environment for it.
pub struct CloudDestination {
    pub url: String,
    pub env: Vec<(String, String)>,
    _gcs: Option<testenv::GcsEmulator>,
    _azurite: Option<testenv::Azurite>,
}

pub fn cloud_destination(cloud: Cloud, id: &str) -> Result<CloudDestination, String> {
    let key = format!("bench/{id}-cloud.mp4");
    match cloud {
        Cloud::Gcs => {
            let gcs = testenv::GcsEmulator::start().map_err(|e| e.to_string())?;
            Ok(CloudDestination {
                url: format!("gs://{}/{key}", gcs.bucket()),
                env: vec![
                    (
                        "GOOGLE_SERVICE_ACCOUNT_KEY".to_owned(),
                        gcs.service_account_key(),
                    ),
                    ("MMO_ENDPOINT".to_owned(), gcs.endpoint().to_owned()),
                ],
                _gcs: Some(gcs),
                _azurite: None,
            })
        }
        Cloud::Azure => {
            let azurite = testenv::Azurite::start().map_err(|e| e.to_string())?;
            let env = [
                ("AZURE_STORAGE_ACCOUNT_NAME", testenv::azurite::ACCOUNT),
                ("AZURE_STORAGE_ACCOUNT_KEY", testenv::azurite::ACCOUNT_KEY),
                ("MMO_ENDPOINT", azurite.endpoint()),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec();
            Ok(CloudDestination {
                url: format!("az://{}/{key}", azurite.container()),
                env,
                _gcs: None,
                _azurite: Some(azurite),
            })
        }
    }
}

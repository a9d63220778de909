//! Watching the exports change, and showing the published download without printing it.

use super::*;

pub(crate) fn phase(o: &MasterExport) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn ready_condition(
    o: &MasterExport,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub(crate) fn reason(o: &MasterExport) -> String {
    ready_condition(o).map_or_else(|| "-".into(), |c| c.reason.clone())
}

/// Prints each change of phase or reason of the watched resources, as it happens.
pub(crate) struct Watch {
    pub(crate) api: Api<MasterExport>,
    pub(crate) started: Instant,
    pub(crate) seen: BTreeMap<String, (String, String)>,
}

impl Watch {
    pub(crate) fn new(api: Api<MasterExport>) -> Self {
        Watch {
            api,
            started: Instant::now(),
            seen: BTreeMap::new(),
        }
    }

    /// Polls every resource until those in `names` satisfy `done`, printing transitions.
    pub(crate) async fn until(
        &mut self,
        names: &[&str],
        operator: &mut Operator,
        done: impl Fn(&MasterExport) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            operator.check_alive()?;
            let list = self.api.list(&Default::default()).await?;
            let mut finished = true;
            for o in &list.items {
                let name = o.metadata.name.clone().unwrap_or_default();
                let now = (phase(o), reason(o));
                if self.seen.get(&name) != Some(&now) {
                    let message = ready_condition(o)
                        .map(|c| c.message.as_str())
                        .unwrap_or("created; the operator has not written a status yet");
                    println!(
                        "      +{:>4.1}s  {name:<20} {:<10} {:<20} {message}",
                        self.started.elapsed().as_secs_f64(),
                        now.0,
                        now.1
                    );
                    self.seen.insert(name.clone(), now);
                }
                if names.contains(&name.as_str()) && !done(o) {
                    finished = false;
                }
            }
            let listed = names.iter().all(|n| {
                list.items
                    .iter()
                    .any(|o| o.metadata.name.as_deref() == Some(*n))
            });
            if finished && listed {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{names:?} did not get there within {READY_DEADLINE:?}; the operator's log:\n{}",
                    operator.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Shows that the published URL downloads the master, without printing it: it is a bearer
/// credential until it expires.
pub(crate) async fn show_download(client: &Client, secret_name: &str) -> Result<()> {
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(secret_name)
        .await?;
    let url = secret
        .data
        .as_ref()
        .and_then(|d| d.get("url"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or("the URL Secret has no `url` key")?;
    let response = reqwest::Client::new().head(&url).send().await?;
    let length = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    println!(
        "      HEAD <the URL in Secret {secret_name}, key url>: {} ({length} bytes). Workloads mount \
         that Secret;\n      the URL itself is never logged or put in Events.",
        response.status()
    );
    Ok(())
}

//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas can run and
//! one acts. The same protocol as client-go's leaderelection: the holder renews
//! `renewTime`; anyone may take the lease once `renewTime + leaseDurationSeconds` has
//! passed; every write carries the `resourceVersion` read, so two candidates cannot both
//! win. A leader that cannot renew within the lease duration stops (the process exits and
//! restarts as a candidate), which is what keeps two leaders from overlapping.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

/// Whether the holder (if any) still holds the lease at `now`.
pub fn held_by_other(spec: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return false;
    };
    if holder == identity {
        return false;
    }
    let duration =
        jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match &spec.renew_time {
        Some(renewed) => renewed
            .0
            .checked_add(duration)
            .map(|until| until > now)
            .unwrap_or(true),
        None => false,
    }
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Tries once to take or renew the lease; true when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = self.config.lease_duration.as_secs().max(1) as i32;
        match self.api.get_opt(&self.config.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if held_by_other(spec, &self.config.identity, now) {
                    return Ok(false);
                }
                let ours = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
                if !ours {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(MicroTime(now));
                    spec.holder_identity = Some(self.config.identity.clone());
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // `replace` sends the resourceVersion we read: a concurrent writer makes it 409.
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica leads, then keeps renewing in the background. The returned
    /// channel turns `false` if leadership is lost.
    pub async fn lead(self) -> watch::Receiver<bool> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::debug!(lease = %self.config.name, "another replica leads; waiting")
                }
                Err(error) => tracing::warn!(%error, "could not read or take the leader lease"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
        tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
        let (tx, rx) = watch::channel(true);
        tokio::spawn(async move {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.config.retry_period).await;
                match self.try_acquire_or_renew().await {
                    Ok(true) => last_renewal = tokio::time::Instant::now(),
                    Ok(false) => {
                        let _ = tx.send(false);
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not renew the leader lease");
                        if last_renewal.elapsed() >= self.config.lease_duration {
                            let _ = tx.send(false);
                            return;
                        }
                    }
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_lease_of_another_holds() {
        assert!(held_by_other(&spec("a", 5, 15), "b", Timestamp::now()));
    }

    #[test]
    fn an_expired_lease_or_our_own_can_be_taken() {
        assert!(!held_by_other(&spec("a", 20, 15), "b", Timestamp::now()));
        assert!(!held_by_other(&spec("b", 5, 15), "b", Timestamp::now()));
        assert!(!held_by_other(&LeaseSpec::default(), "b", Timestamp::now()));
    }
}

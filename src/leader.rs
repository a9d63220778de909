//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas can run and
//! one acts. The same protocol as client-go's leaderelection: the holder renews
//! `renewTime`; anyone may take the lease once `renewTime + leaseDurationSeconds` has
//! passed; every write carries the `resourceVersion` read, so two candidates cannot both
//! win. A leader that cannot renew within the lease duration stops (the process exits and
//! restarts as a candidate), which is what keeps two leaders from overlapping; a renewal
//! that hangs is cut off at the same deadline ([`renewal_budget`]).

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

/// How long the next renewal may take, `since_renewed` after the last successful one began
/// (the instant before its request, so no later than the `renewTime` it wrote): until a
/// retry period before the lease would expire, so that this replica stops leading before any
/// other may take the lease (client-go's renew deadline). `None`: the deadline has passed.
pub fn renewal_budget(since_renewed: Duration, config: &LeaseConfig) -> Option<Duration> {
    let deadline = config.lease_duration.saturating_sub(config.retry_period);
    deadline
        .checked_sub(since_renewed)
        .filter(|left| !left.is_zero())
}

/// Renews with `renew` every retry period while it succeeds within [`renewal_budget`];
/// returns once leadership is lost: another holds the lease, or renewals failed or hung
/// until the deadline. `renewed` is when the last successful renewal began.
async fn keep_renewing<F, Fut>(
    config: &LeaseConfig,
    mut renewed: tokio::time::Instant,
    mut renew: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, kube::Error>>,
{
    loop {
        tokio::time::sleep(config.retry_period).await;
        let Some(budget) = renewal_budget(renewed.elapsed(), config) else {
            tracing::warn!("could not renew the leader lease in time");
            return;
        };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(budget, renew()).await {
            Ok(Ok(true)) => renewed = started,
            Ok(Ok(false)) => return,
            // Retried until the deadline, checked above.
            Ok(Err(error)) => tracing::warn!(%error, "could not renew the leader lease"),
            Err(_) => {
                tracing::warn!("renewing the leader lease hung past its deadline");
                return;
            }
        }
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
        // When the winning attempt began: no later than the renewTime it wrote.
        let acquired = loop {
            let started = tokio::time::Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => break started,
                Ok(false) => {
                    tracing::debug!(lease = %self.config.name, "another replica leads; waiting")
                }
                Err(error) => tracing::warn!(%error, "could not read or take the leader lease"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        };
        tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
        let (tx, rx) = watch::channel(true);
        tokio::spawn(async move {
            keep_renewing(&self.config, acquired, || self.try_acquire_or_renew()).await;
            let _ = tx.send(false);
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

    fn config(lease: u64, retry: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn a_renewal_may_take_only_until_a_retry_period_before_the_lease_expires() {
        let config = config(15, 5);
        assert_eq!(
            renewal_budget(Duration::ZERO, &config),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            renewal_budget(Duration::from_secs(5), &config),
            Some(Duration::from_secs(5))
        );
        assert_eq!(renewal_budget(Duration::from_secs(10), &config), None);
        assert_eq!(renewal_budget(Duration::from_secs(60), &config), None);
    }

    /// A renewal that never answers (a hung connection) ends leadership before the lease
    /// could pass to another replica, not whenever the request gives up.
    #[tokio::test(start_paused = true)]
    async fn a_hung_renewal_ends_leadership_before_the_lease_expires() {
        let config = config(15, 5);
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        keep_renewing(&config, start, || {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Ok(true)
                } else {
                    std::future::pending().await
                }
            }
        })
        .await;
        // Renewed at 5 s; the second renewal, from 10 s, hangs: cut off at 5 + 10 = 15 s,
        // when the lease renewed at 5 s still has 5 s to run for the others.
        assert_eq!(calls, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_end_leadership_at_the_renew_deadline() {
        let config = config(15, 5);
        let start = tokio::time::Instant::now();
        keep_renewing(&config, start, || async {
            Err(kube::Error::Api(
                kube::core::Status::failure("down", "ServiceUnavailable")
                    .with_code(503)
                    .boxed(),
            ))
        })
        .await;
        // Tried at 5 s (fails), then at 10 s the deadline (15 − 5) has passed.
        assert_eq!(start.elapsed(), Duration::from_secs(10));
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

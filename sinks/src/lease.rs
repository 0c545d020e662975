//! Leader election with a `coordination.k8s.io/v1` Lease: every replica serves xDS,
//! exactly one (the Lease's holder) writes status.
//!
//! # Contract
//! - A replica holds the Lease while it renews it every `renew_every`; another
//!   replica takes it over only after `duration` has passed since the last renewal.
//! - Every change of the Lease is an update with the read resourceVersion as a
//!   precondition, so two replicas never both win the same takeover.
//! - `leader` is true only while the last renewal is younger than `duration` minus
//!   one renewal period: a replica that cannot reach the API server stops writing
//!   before another can take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Which Lease, and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name, or host and process id).
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// Starts the elector on the current tokio runtime; the receiver says whether this
/// replica currently leads.
pub fn spawn(client: kube::Client, config: LeaseConfig) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut renewed: Option<Instant> = None;
        loop {
            match try_acquire(&api, &config).await {
                Ok(true) => renewed = Some(Instant::now()),
                Ok(false) => renewed = None,
                Err(e) => tracing::warn!(lease = %config.name, "renewing the status lease: {e}"),
            }
            let valid = config.duration.saturating_sub(config.renew_every);
            let leading = renewed.is_some_and(|t| t.elapsed() < valid);
            tx.send_if_modified(|l| {
                let changed = *l != leading;
                if changed {
                    tracing::info!(identity = %config.identity, leading, "status leadership changed");
                }
                *l = leading;
                changed
            });
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(config.renew_every).await;
        }
    });
    rx
}

/// One round: create, renew or take over the Lease. `Ok(true)` when we hold it.
async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> kube::Result<bool> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec(config, now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let ours = current.holder_identity.as_deref() == Some(config.identity.as_str());
    let expired = match (&current.renew_time, current.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            now.duration_since(*renewed) > SignedDuration::from_secs(i64::from(secs))
        }
        _ => true,
    };
    if !ours && !expired {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let mut spec = spec(config, now, transitions);
    if ours {
        spec.acquire_time = current.acquire_time;
    }
    lease.spec = Some(spec);
    // The resourceVersion read above makes this a compare-and-swap.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn spec(config: &LeaseConfig, now: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

//! The statistical checks upstream runs after a sanity request: how a weighted rule
//! splits requests over its backends (`HTTPRouteWeight`, conformance/utils/weight), and
//! what share of requests a percentage mirror copies (`HTTPRouteRequestPercentageMirror`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cases::{RequestCase, WeightedDistribution};
use crate::requests::{self, BackendLookup, Target};

/// Upstream's constants in conformance/tests/httproute-request-percentage-mirror.go
/// (the case data only points at them): 500 requests, 10 in flight, a band of three
/// binomial standard deviations, five tries.
const MIRROR_TOTAL_REQUESTS: usize = 500;
const MIRROR_CONCURRENCY: usize = 10;
const MIRROR_TOLERANCE_STD_DEVS: f64 = 3.0;
const MIRROR_DISTRIBUTION_CHECKS: usize = 5;
const MIRROR_REQUEST_ID: &str = "gateway-api-conformance-request-id";
/// Upstream sleeps 2 s between failed distribution checks.
const MIRROR_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Mirrored copies may land after the primary response: the log count must stay the
/// same for this long before it is read, and is read anyway after `MIRROR_SETTLE_MAX`.
const MIRROR_SETTLE: Duration = Duration::from_millis(500);
const MIRROR_SETTLE_MAX: Duration = Duration::from_secs(10);
/// How long one request of a distribution run is retried (upstream's
/// `MakeRequestAndExpectEventuallyConsistentResponse` with one required success).
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// Runs `job()` `total` times with at most `concurrency` in flight; the first error
/// stops the others.
async fn fan_out<T, F, Fut>(total: usize, concurrency: usize, job: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, total.max(1)) {
        let (job, next) = (job.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                out.push(job().await?);
            }
            Ok::<_, String>(out)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = workers.join_next().await {
        // Returning drops `workers`, which aborts the rest.
        all.extend(joined.map_err(|e| format!("request task: {e}"))??);
    }
    Ok(all)
}

/// `{backend}-{hash}-{hash}` → `{backend}`, as upstream's `extractBackendName`.
fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    if parts.len() < 3 {
        pod.to_string()
    } else {
        parts[..parts.len() - 2].join("-")
    }
}

/// Upstream's `TestWeightedDistribution`, retried up to `max_attempts` times.
pub async fn weighted(
    rc: &RequestCase,
    target: &Target,
    spec: &WeightedDistribution,
) -> Result<(), String> {
    let attempts = spec.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match weighted_once(rc, target, spec).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Err(format!(
        "weighted distribution failed {attempts} times; last: {last}"
    ))
}

async fn weighted_once(
    rc: &RequestCase,
    target: &Target,
    spec: &WeightedDistribution,
) -> Result<(), String> {
    let shared = Arc::new((rc.clone(), target.clone()));
    let pods = fan_out(spec.total_requests, spec.concurrency, move || {
        let shared = shared.clone();
        async move {
            let (rc, target) = &*shared;
            // Upstream's entropy: a random header (it sometimes also sleeps up to 1 s
            // first; that only spreads the requests out in time, so it is left out).
            let jitter = [(
                "X-Jitter".to_string(),
                (requests::random_u64() % 10_000).to_string(),
            )];
            let sent = requests::attempt(rc, target, &jitter).await?;
            Ok(sent.response.echo["pod"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
    })
    .await?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods {
        let backend = backend_of(pod);
        if !spec.expected_weights.contains_key(&backend) {
            return Err(format!(
                "request handled by an unexpected pod {pod:?} (backend {backend:?})"
            ));
        }
        *seen.entry(backend).or_default() += 1;
    }
    let mut errors = Vec::new();
    let active = spec.expected_weights.values().filter(|w| **w > 0.0).count();
    if seen.len() != active {
        errors.push(format!(
            "expected {active} backends to receive traffic, got {}",
            seen.len()
        ));
    }
    let total = spec.total_requests.max(1) as f64;
    for (backend, want) in &spec.expected_weights {
        let got = seen.get(backend).copied().unwrap_or(0) as f64 / total;
        if (got - want).abs() > spec.tolerance {
            errors.push(format!(
                "backend {backend:?} got {got:.3} of the traffic, want {want} ± {}",
                spec.tolerance
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (counts over {} requests: {seen:?})",
            errors.join("; "),
            spec.total_requests
        ))
    }
}

/// Upstream's percentage mirror check for one request entry: up to five times, send
/// the request 500 times with one fresh request id and count the mirror backends' log
/// lines for that exact path; each count must lie within three binomial standard
/// deviations of `n · percent / 100`, where `n` is the number of requests sent
/// (500 plus any retries).
pub async fn percentage_mirror(
    rc: &RequestCase,
    target: &Target,
    backends: &BackendLookup<'_>,
) -> Result<(), String> {
    let mut mirrors = Vec::new();
    for m in rc.mirrored_to.iter().flatten() {
        let Some(percent) = m.percent else { continue };
        let server = backends(&m.namespace, &m.name)
            .ok_or_else(|| format!("no echo backend {}/{}", m.namespace, m.name))?;
        mirrors.push((format!("{}/{}", m.namespace, m.name), percent, server));
    }
    if mirrors.is_empty() {
        return Ok(());
    }
    let mut last = String::new();
    for check in 1..=MIRROR_DISTRIBUTION_CHECKS {
        let id = requests::uuid();
        let mut variant = rc.clone();
        variant.request.path = requests::with_query(&rc.request.path, MIRROR_REQUEST_ID, &id);
        if let Some(expected) = variant.expected_request.as_mut() {
            expected.path = requests::with_query(&expected.path, MIRROR_REQUEST_ID, &id);
        }
        variant.request_id_query_param = None;
        variant.mirrored_to = None;
        let needle = format!(
            "Echoing back request made to {} to client",
            variant.request.path
        );
        let sent: usize = send_all(variant, target.clone()).await?.into_iter().sum();
        let n = sent as f64;
        let mut errors = Vec::new();
        for (name, percent, server) in &mirrors {
            let count = settled_count(|| {
                server
                    .log()
                    .iter()
                    .filter(|l| l.starts_with(&needle))
                    .count()
            })
            .await;
            let p = percent / 100.0;
            let expected = n * p;
            let margin = MIRROR_TOLERANCE_STD_DEVS * (n * p * (1.0 - p)).sqrt();
            if (count as f64 - expected).abs() > margin {
                errors.push(format!(
                    "{name} logged {count} of {sent} requests, want {expected:.1} ± {margin:.1} ({percent}%)"
                ));
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        last = format!(
            "check {check}/{MIRROR_DISTRIBUTION_CHECKS}: {}",
            errors.join("; ")
        );
        if check < MIRROR_DISTRIBUTION_CHECKS {
            tokio::time::sleep(MIRROR_RETRY_PAUSE).await;
        }
    }
    Err(format!("percentage mirror distribution: {last}"))
}

/// Sends `rc` `MIRROR_TOTAL_REQUESTS` times, each retried until it passes; the number
/// of round trips each took.
async fn send_all(rc: RequestCase, target: Target) -> Result<Vec<usize>, String> {
    let shared = Arc::new((rc, target));
    fan_out(MIRROR_TOTAL_REQUESTS, MIRROR_CONCURRENCY, move || {
        let shared = shared.clone();
        async move {
            let (rc, target) = &*shared;
            let start = Instant::now();
            let mut tries = 0;
            loop {
                tries += 1;
                match requests::attempt(rc, target, &[]).await {
                    Ok(_) => return Ok(tries),
                    Err(e) if start.elapsed() > REQUEST_DEADLINE => {
                        return Err(format!("request {:?}: {e}", rc.name));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    })
    .await
}

/// `count()` once it has not changed for `MIRROR_SETTLE` (or after `MIRROR_SETTLE_MAX`).
async fn settled_count(count: impl Fn() -> usize) -> usize {
    let start = Instant::now();
    let mut last = count();
    let mut stable_since = Instant::now();
    while start.elapsed() < MIRROR_SETTLE_MAX && stable_since.elapsed() < MIRROR_SETTLE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

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

/// Upstream (conformance/tests/httproute-request-percentage-mirror.go; the case data
/// only points at it) sends 500 requests 10 in flight, up to five tries, and passes on
/// the first try within three binomial standard deviations. Here one sample of 5,000
/// requests is judged once with a band of 4.5 deviations: a correct mirror fails with
/// probability ~7e-6 per check (three standard deviations over 2,500 failed a correct
/// 35% mirror in CI: 0.27% per check, six checks a run), while 25% still fails a 20%
/// check with probability ~1 - 3e-5.
const MIRROR_SAMPLE_REQUESTS: usize = 5000;
const MIRROR_CONCURRENCY: usize = 10;
const MIRROR_TOLERANCE_STD_DEVS: f64 = 4.5;
const MIRROR_REQUEST_ID: &str = "gateway-api-conformance-request-id";
/// Mirrored copies may land after the primary response: the log count must stay the
/// same for this long before it is read, and is read anyway after `MIRROR_SETTLE_MAX`.
const MIRROR_SETTLE: Duration = Duration::from_millis(500);
const MIRROR_SETTLE_MAX: Duration = Duration::from_secs(10);

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

/// Upstream's `TestWeightedDistribution`, with its retries turned into one larger
/// sample: upstream runs up to `max_attempts` rounds of `total_requests` and passes on
/// the first round inside the tolerance, so a 63/37 split passes a 70/30 ± 0.05 check
/// ~86% of the time. Here all `max_attempts` rounds always run and one verdict is
/// taken over their aggregate counts (5,000 requests for HTTPRouteWeight: a correct
/// split fails with probability ~1e-14, a 63/37 split passes with ~0.2%). A request is
/// retried only when its round trip fails (connection refused or reset, no response);
/// any other failed comparison fails the check.
pub async fn weighted(
    rc: &RequestCase,
    target: &Target,
    spec: &WeightedDistribution,
) -> Result<(), String> {
    let total = spec.total_requests.saturating_mul(spec.max_attempts.max(1));
    let shared = Arc::new((rc.clone(), target.clone()));
    let pods = fan_out(total, spec.concurrency, move || {
        let shared = shared.clone();
        async move {
            let (rc, target) = &*shared;
            // Upstream's entropy: a random header (it sometimes also sleeps up to 1 s
            // first; that only spreads the requests out in time, so it is left out).
            let jitter = [(
                "X-Jitter".to_string(),
                (requests::random_u64() % 10_000).to_string(),
            )];
            let (sent, _) = requests::attempt_until_connected(rc, target, &jitter).await?;
            Ok(sent.response.echo["pod"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
    })
    .await?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods {
        *seen.entry(backend_of(pod)).or_default() += 1;
    }
    weighted_verdict(&seen, spec, total)
}

/// Upstream's verdict over `seen` (backend → requests it answered, `total` in all):
/// only expected backends, exactly the ones with a weight above 0, each share within
/// `tolerance` of its weight.
pub fn weighted_verdict(
    seen: &BTreeMap<String, usize>,
    spec: &WeightedDistribution,
    total: usize,
) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Some(unexpected) = seen
        .keys()
        .find(|b| !spec.expected_weights.contains_key(*b))
    {
        errors.push(format!(
            "requests answered by an unexpected backend {unexpected:?}"
        ));
    }
    let active = spec.expected_weights.values().filter(|w| **w > 0.0).count();
    if seen.len() != active {
        errors.push(format!(
            "expected {active} backends to receive traffic, got {}",
            seen.len()
        ));
    }
    let n = total.max(1) as f64;
    for (backend, want) in &spec.expected_weights {
        let got = seen.get(backend).copied().unwrap_or(0) as f64 / n;
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
            "{} (counts over {total} requests: {seen:?})",
            errors.join("; ")
        ))
    }
}

/// Upstream's percentage mirror check for one request entry, with its five tries
/// turned into one sample: upstream sends the request 500 times with a fresh request
/// id, counts the mirror backends' log lines for that path, and passes on the first of
/// five tries within three binomial standard deviations, so 25% mirroring passes a
/// 20% check ~99% of the time. Here one sample of `MIRROR_SAMPLE_REQUESTS` gets one
/// verdict (see the constants). `n` counts every round trip sent, connection retries
/// included, as upstream does; only failed round trips are retried.
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
        return Err("a percentage mirror check on a request with no percentage mirror".into());
    }
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
    let sent: usize = send_all(variant, target.clone(), MIRROR_SAMPLE_REQUESTS)
        .await?
        .into_iter()
        .sum();
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
        if let Err(e) = mirror_verdict(count, sent, *percent) {
            errors.push(format!("{name}: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "percentage mirror distribution: {}",
            errors.join("; ")
        ))
    }
}

/// `count` mirrored of `sent` lies within `MIRROR_TOLERANCE_STD_DEVS` binomial standard deviations of
/// `sent · percent / 100`.
pub fn mirror_verdict(count: usize, sent: usize, percent: f64) -> Result<(), String> {
    let n = sent as f64;
    let p = percent / 100.0;
    let expected = n * p;
    let margin = MIRROR_TOLERANCE_STD_DEVS * (n * p * (1.0 - p)).sqrt();
    if (count as f64 - expected).abs() > margin {
        return Err(format!(
            "logged {count} of {sent} requests, want {expected:.1} ± {margin:.1} ({percent}%)"
        ));
    }
    Ok(())
}

/// Sends `rc` `total` times; the number of round trips each took (a failed round trip
/// is retried, a failed comparison is an error).
async fn send_all(rc: RequestCase, target: Target, total: usize) -> Result<Vec<usize>, String> {
    let shared = Arc::new((rc, target));
    fan_out(total, MIRROR_CONCURRENCY, move || {
        let shared = shared.clone();
        async move {
            let (rc, target) = &*shared;
            let (_, tries) = requests::attempt_until_connected(rc, target, &[]).await?;
            Ok(tries)
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

//! Generated clusters and churn, for scale tests and benchmarks.
//!
//! ```text
//!  Shape + seed ──generate──▶ Vec<Object> ──manifests──▶ Kubernetes YAML
//!                                 │
//!                                 └──Churn::new──▶ labelled Changes (do, then undo)
//! ```
//!
//! # Contract
//! - Deterministic: the same shape and seed give the same objects, the same YAML
//!   and the same change stream, byte for byte.
//! - Realistic: most routes attach (their listener admits their namespace and
//!   their hostnames intersect) and most backends resolve (the Service exists,
//!   and a ReferenceGrant admits every cross-namespace reference).
//! - Reversible: [`Churn::cycle`] ends where it started, so a run of cycles can
//!   check that memory returns to its level after the initial load.

mod churn;
mod cluster;
mod records;
mod rng;
mod yaml;

#[cfg(test)]
mod tests;

pub use churn::{ChangeType, Churn, Labelled, Mix, endpoint_mix};
pub use cluster::{GATEWAY_NAMESPACE, generate, namespace_name};
pub use rng::Rng;
pub use yaml::{manifest_files, to_yaml};

/// The knobs of a generated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub namespaces: usize,
    pub gateways: usize,
    /// Listeners per gateway, all on port 80, each with its own wildcard hostname.
    pub listeners_per_gateway: usize,
    /// Distinct route hostnames per listener: the number of virtual hosts.
    pub hostnames_per_listener: usize,
    pub routes: usize,
    /// Rules per route are 1..=max_rules; matches per rule 1..=max_matches;
    /// backends per rule 1..=max_backends.
    pub max_rules: usize,
    pub max_matches: usize,
    pub max_backends: usize,
    pub services: usize,
    pub endpoints_per_service: usize,
    /// Share of backend refs that cross into the previous namespace (granted).
    pub cross_namespace_percent: u32,
    /// Share of listeners that admit namespaces by label selector (else `All`).
    pub selector_percent: u32,
    /// Share of rules with a filter (header modifier or rewrite).
    pub filter_percent: u32,
}

/// Named shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 1k routes, 1k services, 10k endpoints.
    Small,
    /// 50 namespaces × 100 routes (the Gateway API benchmark's shape).
    Gab,
    /// 10k routes, 10k services, 100k endpoints.
    Large,
    /// 50k routes, 50k services, 500k endpoints.
    Xl,
}

impl Preset {
    pub const ALL: [Preset; 4] = [Preset::Small, Preset::Gab, Preset::Large, Preset::Xl];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Gab => "gab",
            Preset::Large => "large",
            Preset::Xl => "xl",
        }
    }

    pub fn shape(self) -> Shape {
        let base = Shape {
            namespaces: 10,
            gateways: 2,
            listeners_per_gateway: 4,
            hostnames_per_listener: 20,
            routes: 1_000,
            max_rules: 3,
            max_matches: 2,
            max_backends: 3,
            services: 1_000,
            endpoints_per_service: 10,
            cross_namespace_percent: 10,
            selector_percent: 50,
            filter_percent: 30,
        };
        match self {
            Preset::Small => base,
            Preset::Gab => Shape {
                namespaces: 50,
                gateways: 5,
                hostnames_per_listener: 25,
                routes: 5_000,
                services: 5_000,
                ..base
            },
            Preset::Large => Shape {
                namespaces: 100,
                gateways: 10,
                hostnames_per_listener: 25,
                routes: 10_000,
                services: 10_000,
                ..base
            },
            Preset::Xl => Shape {
                namespaces: 500,
                gateways: 20,
                hostnames_per_listener: 50,
                routes: 50_000,
                services: 50_000,
                ..base
            },
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset {s:?} (small, gab, large, xl)"))
    }
}

//! Benchmarks of the hot paths, on the generated `small` cluster: conversion at the
//! source boundary, selector matching in the dataflow, route ordering, and xDS
//! encoding. Sample sizes are small: these run on 2-core machines.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prost::Message;
use sluice_pipeline::ir::{VirtualHostIr, XdsOutput};
use sluice_pipeline::model::{Change, Object};
use sluice_pipeline::spec::precedence::Precedence;
use sluice_pipeline::{DEFAULT_CONTROLLER, Pipeline, PipelineConfig, evaluate};
use sluice_sinks::encode;
use sluice_sources::generate::{ChangeType, Churn, Mix, Preset, generate, manifest_files};

const SEED: u64 = 1;

fn small() -> Vec<Object> {
    generate(&Preset::Small.shape(), SEED)
}

/// YAML → records, per manifest file of the `small` cluster.
fn source_parse(c: &mut Criterion) {
    let files = manifest_files(&small()).expect("serializes");
    let mut group = c.benchmark_group("source_parse");
    for (name, text) in &files {
        if text.len() < 100_000 {
            continue; // the tiny files measure nothing
        }
        group.bench_function(name.as_str(), |b| {
            b.iter(|| sluice_sources::parse_manifests(black_box(text), name).expect("parses"))
        });
    }
    group.finish();
}

/// One namespace label flip (and, next iteration, its undo) on the loaded `small`
/// cluster: the cost is in the selector join and the re-attachment it causes.
fn selector_flip(c: &mut Criterion) {
    let objects = small();
    let shape = Preset::Small.shape();
    let mix: Mix = [(ChangeType::NamespaceRelabel, 20)].into_iter().collect();
    let stream: Vec<Change> = Churn::new(&shape, &objects, SEED)
        .cycle(&mix)
        .into_iter()
        .map(|l| l.change)
        .collect();
    let mut pipeline = Pipeline::new(PipelineConfig::default()).expect("starts");
    pipeline
        .apply(objects.into_iter().map(Change::Apply))
        .expect("loads");
    // The stream returns to its start, so it can be replayed forever.
    let mut next = stream.iter().cycle();
    c.bench_function("selector_flip/small", |b| {
        b.iter(|| {
            let change = next.next().cloned().expect("non-empty stream");
            pipeline.apply([change]).expect("applies")
        })
    });
}

/// The largest virtual host of the `small` cluster, from a full translation.
fn largest_vhost(objects: Vec<Object>) -> (VirtualHostIr, Vec<VirtualHostIr>) {
    let mut vhosts: Vec<VirtualHostIr> = evaluate(objects, DEFAULT_CONTROLLER)
        .xds
        .into_iter()
        .filter_map(|o| match o {
            XdsOutput::VirtualHost(v) => Some(v),
            _ => None,
        })
        .collect();
    vhosts.sort_by_key(|v| std::cmp::Reverse(v.routes.len()));
    (vhosts[0].clone(), vhosts)
}

/// Sorting every match of every route of the cluster as if on one virtual host.
fn precedence_sort(c: &mut Criterion) {
    let mut keys = vec![];
    for o in small() {
        let Object::HttpRoute(r) = o else { continue };
        for (i, rule) in r.rules.iter().enumerate() {
            for (j, m) in rule.matches.iter().enumerate() {
                keys.push(Precedence::new(m, &r.meta.creation, &r.meta.key, i, j));
            }
        }
    }
    let name = format!("precedence_sort/{}_matches", keys.len());
    c.bench_function(&name, |b| {
        b.iter_batched(
            || keys.clone(),
            |mut k| {
                k.sort();
                k
            },
            BatchSize::LargeInput,
        )
    });
}

fn encoding(c: &mut Criterion) {
    let (largest, vhosts) = largest_vhost(small());
    let mut group = c.benchmark_group("encode");
    group.bench_function(
        format!("virtual_host/{}_routes", largest.routes.len()),
        |b| b.iter(|| encode::route::virtual_host(black_box(&largest)).encode_to_vec()),
    );
    let encoded: Vec<Vec<u8>> = vhosts
        .iter()
        .map(|v| encode::route::virtual_host(v).encode_to_vec())
        .collect();
    group.bench_function(
        format!("route_configuration/{}_vhosts", encoded.len()),
        |b| {
            b.iter(|| {
                encode::route::route_configuration_bytes("gw/80", encoded.iter().map(Vec::as_slice))
            })
        },
    );
    let endpoints: Vec<(String, u16)> = (0..100).map(|i| (format!("10.0.0.{i}"), 8080)).collect();
    group.bench_function("load_assignment/100_endpoints", |b| {
        b.iter(|| {
            encode::cluster::load_assignment("ns/svc:80", black_box(&endpoints)).encode_to_vec()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = source_parse, selector_flip, precedence_sort, encoding
}
criterion_main!(benches);

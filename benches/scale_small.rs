//! The `small` preset end to end through the runtime: the controller starts, takes
//! the initial load, then a churn cycle of every change type (each undone), one
//! logical time per change.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_pipeline::model::Change;
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sources::generate::{ChangeType, Churn, Mix, Preset, generate};

fn small_end_to_end(c: &mut Criterion) {
    let shape = Preset::Small.shape();
    let objects = generate(&shape, 1);
    let mix: Mix = ChangeType::ALL.into_iter().map(|t| (t, 10)).collect();
    let churn: Vec<Change> = Churn::new(&shape, &objects, 1)
        .cycle(&mix)
        .into_iter()
        .map(|l| l.change)
        .collect();
    let name = format!("scale/small_initial_plus_{}_changes", churn.len());
    c.bench_function(&name, |b| {
        b.iter(|| {
            let mut controller = Controller::new(ControllerConfig::default()).expect("starts");
            controller
                .apply(objects.iter().cloned().map(Change::Apply))
                .expect("loads");
            for change in &churn {
                controller.apply([change.clone()]).expect("applies");
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = small_end_to_end
}
criterion_main!(benches);

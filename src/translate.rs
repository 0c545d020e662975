//! `sluice translate`: manifests in, each Gateway's xDS (Envoy's proto3 JSON mapping)
//! and every status out.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use sluice_pipeline::model::Change;
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::GatewayResources;
use sluice_sinks::status::{gateway_status_json, policy_status_json, route_status_json};

use crate::{Format, TranslateArgs};

/// Exit code for input that is not YAML.
const EXIT_BAD_INPUT: u8 = 2;

pub fn run(args: TranslateArgs) -> anyhow::Result<ExitCode> {
    let TranslateArgs {
        paths,
        output,
        pipeline,
    } = args;
    let started = std::time::Instant::now();
    let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
    let parsed = match sluice_sources::load_paths(&paths) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    for w in &parsed.warnings {
        eprintln!("warning: {w}");
    }
    tracing::debug!(objects = parsed.objects.len(), ms = ms(started), "loaded");
    let mut controller = Controller::new(ControllerConfig {
        pipeline: pipeline.config(),
        encode: EncodeConfig::default(),
    })?;
    let step = controller.apply(parsed.objects.into_iter().map(Change::Apply))?;
    tracing::debug!(
        outputs = step.outputs,
        ms = ms(started),
        "translated and encoded"
    );
    let doc = document(&controller)?;
    tracing::debug!(ms = ms(started), "rendered");
    let text = match output {
        Format::Json => serde_json::to_string_pretty(&doc)?,
        Format::Yaml => serde_yaml_ng::to_string(&doc)?,
    };
    println!("{}", text.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn resources_json(res: &GatewayResources) -> anyhow::Result<Value> {
    sluice_sinks::json::resources_json(res).context("printing xDS resources")
}

/// The printed document: every Gateway of ours with its xDS and status, then every
/// HTTPRoute's status, then every BackendTLSPolicy's.
pub fn document(controller: &Controller) -> anyhow::Result<Value> {
    let board = controller.status();
    let empty = GatewayResources::default();
    let mut gateways = vec![];
    for status in board.gateways() {
        let res = controller
            .gateways()
            .find(|(k, _)| **k == status.gateway)
            .map(|(_, r)| r.as_ref());
        gateways.push(json!({
            "namespace": status.gateway.namespace,
            "name": status.gateway.name,
            "status": gateway_status_json(status, &[]),
            "xds": resources_json(res.unwrap_or(&empty))?,
        }));
    }
    let routes: Vec<Value> = board
        .routes()
        .into_iter()
        .map(|(route, parents)| {
            json!({"namespace": route.namespace, "name": route.name, "status": route_status_json(&parents, controller.controller_name())})
        })
        .collect();
    let policies: Vec<Value> = (board.policies())
        .map(|p| {
            json!({
                "namespace": p.policy.namespace,
                "name": p.policy.name,
                "status": policy_status_json(p, controller.controller_name()),
            })
        })
        .collect();
    Ok(json!({ "gateways": gateways, "httproutes": routes, "backendtlspolicies": policies }))
}

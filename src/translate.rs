//! `sluice translate`: manifests in, each Gateway's xDS (Envoy's proto3 JSON mapping)
//! and every status out.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use sluice_pipeline::Pipeline;
use sluice_pipeline::model::Change;
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::json::resource_to_json;
use sluice_sinks::state::{GatewayResources, ResourceType};
use sluice_sinks::status::{StatusBoard, gateway_status_json, route_status_json};
use sluice_sinks::translator::Translator;

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
    let config = pipeline.config();
    let controller = config.controller_name.clone();
    let mut pipeline = Pipeline::new(config)?;
    let delta = pipeline.apply(parsed.objects.into_iter().map(Change::Apply))?;
    let mut translator = Translator::new(EncodeConfig::default());
    translator.apply(&delta)?;
    tracing::debug!(
        outputs = delta.len(),
        ms = ms(started),
        "translated and encoded"
    );
    let mut board = StatusBoard::default();
    board.apply(delta.time, &delta.status);
    let doc = document(&translator, &board, &controller)?;
    tracing::debug!(ms = ms(started), "rendered");
    let text = match output {
        Format::Json => serde_json::to_string_pretty(&doc)?,
        Format::Yaml => serde_yaml_ng::to_string(&doc)?,
    };
    println!("{}", text.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn resources_json(res: &GatewayResources) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    for (ty, key) in [
        (ResourceType::Listener, "listeners"),
        (ResourceType::Route, "routes"),
        (ResourceType::Cluster, "clusters"),
        (ResourceType::Endpoint, "endpoints"),
    ] {
        let items = res
            .get(ty)
            .values()
            .map(|r| resource_to_json(ty, &r.body).with_context(|| format!("printing {}", r.name)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.insert(key.to_string(), Value::Array(items));
    }
    Ok(Value::Object(out))
}

/// The printed document: every Gateway of ours with its xDS and status, then every
/// HTTPRoute's status.
pub fn document(
    translator: &Translator,
    board: &StatusBoard,
    controller: &str,
) -> anyhow::Result<Value> {
    let empty = GatewayResources::default();
    let mut gateways = vec![];
    for status in board.gateways() {
        let res = translator
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
            json!({"namespace": route.namespace, "name": route.name, "status": route_status_json(&parents, controller)})
        })
        .collect();
    Ok(json!({ "gateways": gateways, "httproutes": routes }))
}

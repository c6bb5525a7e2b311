//! `flywheel up` and `flywheel serve gateway`: open the backends, create the topics of
//! every configured tenant, serve the HTTP API with `/healthz` and `/metrics`, and stop
//! cleanly on SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use flywheel_gateway::{AppState, Auth, Check, HealthCheck, bind, gateway_routes, serve};
use flywheel_store::blobs::open_blobs;
use flywheel_topics::{BusMetrics, TopicKind, connect, tenant_topics};
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;
use prometheus::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::Global;
use crate::config::Settings;

#[derive(Debug, Serialize)]
struct Ready<'a> {
    http: String,
    bus: &'a str,
    meta: &'a str,
    blobs: &'a str,
    tenants: Vec<&'a str>,
    services: &'a [&'a str],
}

/// Metrics every flywheel process exports about itself.
fn process_metrics(registry: &Registry) -> anyhow::Result<()> {
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "flywheel_build_info",
            "The running flywheel's version (always 1).",
        ),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))?;
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
async fn stop_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r.context("waiting for SIGINT")?; Ok("SIGINT") }
        _ = term.recv() => Ok("SIGTERM"),
    }
}

pub(crate) async fn run(global: &Global, services: &[&str]) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let registry = Registry::new();
    process_metrics(&registry)?;

    let bus = connect(&settings.bus, &BusMetrics::new(&registry))
        .await
        .with_context(|| format!("opening the bus {}", settings.bus))?;
    let meta = flywheel_store::open(&settings.meta)
        .await
        .with_context(|| format!("opening the metadata store {}", settings.meta))?;
    let blobs = open_blobs(&settings.blobs)?;
    for tenant in &settings.tenants {
        bus.create_topics(&tenant_topics(tenant))
            .await
            .with_context(|| format!("creating the topics of tenant {tenant}"))?;
        meta.tenant(tenant)
            .await
            .with_context(|| format!("opening the metadata of tenant {tenant}"))?;
    }

    let probe_topic = TopicKind::Samples.topic(&settings.tenants[0]);
    let bus_check = Arc::clone(&bus);
    let blob_check = Arc::clone(&blobs);
    let meta_check = Arc::clone(&meta);
    let checks: Vec<Box<dyn HealthCheck>> = vec![
        Box::new(Check::new("bus", move || {
            let bus = Arc::clone(&bus_check);
            let topic = probe_topic.clone();
            async move {
                bus.partitions(&topic)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })),
        Box::new(Check::new("meta", move || {
            let meta = Arc::clone(&meta_check);
            async move { meta.tenants().await.map(|_| ()).map_err(|e| e.to_string()) }
        })),
        Box::new(Check::new("blobs", move || {
            let blobs = Arc::clone(&blob_check);
            async move {
                match blobs.head(&ObjectPath::from("flywheel-health-probe")).await {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })),
    ];
    let auth = if settings.tokens.is_empty() {
        Auth::open()
    } else {
        Auth::with_tokens(settings.tokens.clone())
    };
    let state = AppState {
        registry: registry.clone(),
        auth: Arc::new(auth),
        checks: Arc::new(checks),
    };
    let (listener, addr) = bind(settings.http)
        .await
        .with_context(|| format!("listening on {}", settings.http))?;

    let ready = Ready {
        http: format!("http://{addr}"),
        bus: bus.url(),
        meta: meta.url(),
        blobs: &settings.blobs,
        tenants: settings.tenants.iter().map(|t| t.as_str()).collect(),
        services,
    };
    if global.json {
        println!("{}", serde_json::to_string(&ready)?);
    } else {
        println!(
            "flywheel up: serving {} (/healthz, /metrics, /api/v1) with {}",
            ready.http,
            services.join(", ")
        );
        println!(
            "  bus   {}\n  meta  {}\n  blobs {}",
            ready.bus, ready.meta, ready.blobs
        );
        println!("  tenants {}", ready.tenants.join(", "));
    }

    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, gateway_routes(state), shutdown.clone()));
    let signal = stop_signal().await?;
    tracing::info!("{signal}: shutting down");
    shutdown.cancel();
    server
        .await
        .context("the HTTP server task failed")?
        .context("serving HTTP")?;
    drop((bus, meta));
    if !global.json {
        println!("flywheel up: stopped cleanly ({signal})");
    }
    Ok(())
}

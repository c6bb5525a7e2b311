//! `flywheel up` and `flywheel serve SERVICE`: open the backends, create the topics of
//! every configured tenant, run the services asked for (`up`: all of them), serve HTTP
//! (`/healthz` and `/metrics` always, the API where the gateway runs), and stop cleanly on
//! SIGINT or SIGTERM. A service that fails stops the process with its error.

use std::sync::Arc;

use anyhow::Context;
use flywheel_gateway::{
    AppState, Auth, Backends, Check, HealthCheck, base_routes, bind, gateway_routes, serve,
};
use flywheel_ingest::{Ingest, IngestMetrics};
use flywheel_store::blobs::open_blobs;
use flywheel_supervisor::{Supervisor, SupervisorMetrics};
use flywheel_topics::{BusMetrics, TopicKind, connect, tenant_topics};
use flywheel_trainer::{Trainer, TrainerMetrics};
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;
use prometheus::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{Global, Service};
use crate::config::Settings;

#[derive(Debug, Serialize)]
struct Ready<'a> {
    http: String,
    bus: &'a str,
    meta: &'a str,
    blobs: &'a str,
    tenants: Vec<&'a str>,
    services: Vec<&'static str>,
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

pub(crate) async fn run(global: &Global, services: &[Service]) -> anyhow::Result<()> {
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
    // only the gateway reads sources: a process without it needs none of their credentials
    let sources = if services.contains(&Service::Gateway) {
        flywheel_sources::Sources::open(&settings.sources)
            .context("opening the restricted-data sources")?
    } else {
        flywheel_sources::Sources::default()
    };
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
        backends: Backends {
            bus: Arc::clone(&bus),
            meta: Arc::clone(&meta),
            blobs: Arc::clone(&blobs),
            sources: Arc::new(sources),
        },
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
        services: services.iter().map(|s| s.name()).collect(),
    };
    if global.json {
        println!("{}", serde_json::to_string(&ready)?);
    } else {
        let name = if services.len() > 1 {
            "up"
        } else {
            services[0].name()
        };
        let routes = if services.contains(&Service::Gateway) {
            "/healthz, /metrics, /api/v1"
        } else {
            "/healthz, /metrics"
        };
        println!(
            "flywheel {name}: serving {} ({routes}) with {}",
            ready.http,
            ready.services.join(", ")
        );
        println!(
            "  bus   {}\n  meta  {}\n  blobs {}",
            ready.bus, ready.meta, ready.blobs
        );
        println!("  tenants {}", ready.tenants.join(", "));
    }

    let shutdown = CancellationToken::new();
    let routes = if services.contains(&Service::Gateway) {
        gateway_routes(state)
    } else {
        base_routes(state)
    };
    let server = tokio::spawn(serve(listener, routes, shutdown.clone()));
    let mut workers = tokio::task::JoinSet::new();
    if services.contains(&Service::Ingest) {
        let ingest = Ingest::new(
            Arc::clone(&bus),
            Arc::clone(&meta),
            Arc::clone(&blobs),
            settings.ingest.clone(),
            IngestMetrics::new(&registry),
        )?;
        let stop = shutdown.clone();
        workers.spawn(async move {
            (
                "ingest",
                ingest.run(stop).await.map_err(anyhow::Error::from),
            )
        });
    }

    if services.contains(&Service::Supervisor) {
        let supervisor = Supervisor::new(
            Arc::clone(&bus),
            Arc::clone(&meta),
            Arc::clone(&blobs),
            settings.supervisor.clone(),
            SupervisorMetrics::new(&registry),
        )?;
        let stop = shutdown.clone();
        workers.spawn(async move {
            (
                "supervisor",
                supervisor.run(stop).await.map_err(anyhow::Error::from),
            )
        });
    }

    if services.contains(&Service::Trainer) {
        let trainer = Trainer::new(
            Arc::clone(&bus),
            Arc::clone(&meta),
            Arc::clone(&blobs),
            settings.trainer.clone(),
            TrainerMetrics::new(&registry),
        )?;
        let stop = shutdown.clone();
        workers.spawn(async move {
            (
                "trainer",
                trainer.run(stop).await.map_err(anyhow::Error::from),
            )
        });
    }

    // run until a signal, or until a service stops on its own (an error)
    let mut signal = None;
    let failed = tokio::select! {
        s = stop_signal() => {
            let s = s?;
            tracing::info!("{s}: shutting down");
            signal = Some(s);
            None
        }
        Some(done) = workers.join_next() => Some(done.context("a service task panicked")?),
    };
    shutdown.cancel();
    let mut first_error = match failed {
        Some((name, Err(e))) => Some(e.context(format!("the {name} service failed"))),
        Some((name, Ok(()))) => Some(anyhow::anyhow!("the {name} service stopped unexpectedly")),
        None => None,
    };
    while let Some(done) = workers.join_next().await {
        let (name, result) = done.context("a service task panicked")?;
        if let Err(e) = result {
            first_error.get_or_insert(e.context(format!("the {name} service failed")));
        }
    }
    server
        .await
        .context("the HTTP server task failed")?
        .context("serving HTTP")?;
    drop((bus, meta));
    if let Some(e) = first_error {
        return Err(e);
    }
    if !global.json {
        println!(
            "flywheel {}: stopped cleanly ({})",
            if services.len() > 1 {
                "up"
            } else {
                services[0].name()
            },
            signal.unwrap_or("stop")
        );
    }
    Ok(())
}

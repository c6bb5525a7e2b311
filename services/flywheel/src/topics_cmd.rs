//! `flywheel topics`: the topic catalogue, and creating a tenant's topics.

use anyhow::Context;
use flywheel_topics::catalogue::{self, TopicKind};
use flywheel_topics::{BusMetrics, Tenant, connect, tenant_topics};

use crate::cli::{Global, TopicsArgs};
use crate::config::Settings;

pub(crate) async fn run(global: &Global, args: &TopicsArgs) -> anyhow::Result<()> {
    // a configuration given is checked even where nothing of it is needed
    let settings = Settings::resolve(global)?;
    if args.markdown {
        print!("{}", catalogue::markdown());
        return Ok(());
    }
    let tenant = args.tenant.as_deref().map(Tenant::new).transpose()?;
    if args.create {
        let tenant = tenant.as_ref().context("--create needs --tenant")?;
        let url = &settings.bus;
        let bus = connect(url, &BusMetrics::new(&prometheus::Registry::new()))
            .await
            .with_context(|| format!("opening the bus {url}"))?;
        bus.create_topics(&tenant_topics(tenant))
            .await
            .with_context(|| format!("creating the topics of tenant {tenant}"))?;
    }
    let rows: Vec<serde_json::Value> = TopicKind::ALL
        .into_iter()
        .map(|kind| {
            let spec = kind.spec();
            let mut v = serde_json::to_value(&spec).expect("spec serializes");
            v["topic"] = match &tenant {
                Some(t) => kind.topic(t).into(),
                None => spec.name_pattern.into(),
            };
            v["pattern"] = kind.pattern().into();
            v
        })
        .collect();
    if global.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<36} {:<18} {:>10} {:>10}  SCHEMA",
        "TOPIC", "KEY", "PARTITIONS", "RETENTION"
    );
    for kind in TopicKind::ALL {
        let spec = kind.spec();
        let name = tenant
            .as_ref()
            .map_or(spec.name_pattern.clone(), |t| kind.topic(t));
        let retention = spec.retention.map_or("forever".to_owned(), |d| {
            format!("{}d", d.as_secs() / 86_400)
        });
        println!(
            "{:<36} {:<18} {:>10} {:>10}  {}",
            name, spec.key, spec.partitions, retention, spec.schema
        );
    }
    if args.create {
        println!(
            "\ncreated where missing on {}",
            Settings::resolve(global)?.bus
        );
    }
    Ok(())
}

//! `scylla://HOST:PORT[,HOST:PORT...]`: the distributed metadata store on ScyllaDB.
//!
//! One session for the whole store; a keyspace per tenant (`{prefix}_{tenant}`) and one
//! for the store itself (`{prefix}_catalogue`: schema version and the tenants). A
//! changeset commits all or nothing through two lightweight transactions on the
//! dataset's row around idempotent writes (`commit`). Layout, protocol and reasons:
//! services/store/README.md.

mod claim;
mod commit;
mod config;
mod db;
mod fold;
mod hash;
mod layout;
mod once_map;
mod records;
mod rows;
mod schema;
mod statements;
mod tenant;
mod view;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use flywheel_topics::Tenant;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session_builder::SessionBuilder;

use config::Config;
use db::{Conn, Ks, Stmt};
use once_map::OnceMap;
use schema::table;
use statements::Statements;
use tenant::ScyllaTenant;

use crate::{MetaStore, StoreError, TenantStore};

/// Replicas of a new keyspace when the URL does not say: 3, or the number of nodes when
/// the cluster has fewer (a single development node gets 1).
const DEFAULT_REPLICATION: u32 = 3;

/// The ScyllaDB metadata store.
#[derive(Debug)]
pub struct ScyllaStore {
    conn: Arc<Conn>,
    replication: u32,
    catalogue: Catalogue,
    /// Tenants opened so far: each is registered, migrated and prepared once, and a slow
    /// open holds up no other tenant's.
    tenants: OnceMap<Tenant, ScyllaTenant>,
}

/// The catalogue keyspace and its statements.
#[derive(Debug)]
struct Catalogue {
    ks: Ks,
    claim: Stmt,
    owner: Stmt,
    ready: Stmt,
    all: Stmt,
    keyspace_exists: Stmt,
}

impl ScyllaStore {
    /// Opens `scylla://HOST:PORT[,HOST:PORT...][?keyspace_prefix=flywheel&replication=N&
    /// consistency=quorum|local_quorum&connect_timeout=5s]`: connects, creates the
    /// catalogue keyspace if missing and runs its pending migrations. A node that cannot
    /// be reached within about the connect timeout is `StoreError::Unreachable`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let config = Config::parse(url)?;
        let profile = ExecutionProfile::builder()
            .consistency(config.level.consistency())
            .serial_consistency(Some(config.level.serial()))
            .build();
        let builder = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.connect_timeout)
            .default_execution_profile_handle(profile.into_handle());
        // connecting includes reading the cluster's topology: bound it all
        let bound = config.connect_timeout * 2 + std::time::Duration::from_secs(1);
        let unreachable = |reason: String| StoreError::Unreachable {
            what: url.to_owned(),
            reason,
        };
        let session = match tokio::time::timeout(bound, builder.build()).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no node answered within {}",
                    humantime::format_duration(bound)
                )));
            }
        };
        let nodes = session.get_cluster_state().get_nodes_info().len();
        let replication = config.replication.unwrap_or_else(|| {
            u32::try_from(nodes)
                .unwrap_or(u32::MAX)
                .clamp(1, DEFAULT_REPLICATION)
        });
        let catalogue_ks = config.catalogue_keyspace();
        let conn = Arc::new(Conn {
            session,
            url: url.to_owned(),
            config,
        });
        let ks = Ks::new(Arc::clone(&conn), catalogue_ks);
        schema::migrate(&ks, &schema::CATALOGUE, replication).await?;
        let catalogue = Catalogue {
            claim: ks
                .prepare(
                    table::TENANTS,
                    "INSERT INTO {ks}.tenants (keyspace_name, tenant, created_at)
                     VALUES (?, ?, ?) IF NOT EXISTS",
                    false,
                )
                .await?,
            owner: ks
                .prepare(
                    table::TENANTS,
                    "SELECT tenant, ready FROM {ks}.tenants WHERE keyspace_name = ?",
                    true,
                )
                .await?,
            ready: ks
                .prepare(
                    table::TENANTS,
                    "UPDATE {ks}.tenants SET ready = true WHERE keyspace_name = ? IF tenant = ?",
                    false,
                )
                .await?,
            all: ks
                .prepare(table::TENANTS, "SELECT tenant FROM {ks}.tenants", true)
                .await?,
            keyspace_exists: ks
                .prepare(
                    "system_schema.keyspaces",
                    "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
                    true,
                )
                .await?,
            ks,
        };
        tracing::info!(url, nodes, replication, "metadata store connected");
        Ok(Self {
            conn,
            replication,
            catalogue,
            tenants: OnceMap::default(),
        })
    }

    /// The keyspace of a tenant (whether or not it exists yet).
    pub fn tenant_keyspace(&self, tenant: &Tenant) -> Result<String, StoreError> {
        self.conn.config.tenant_keyspace(tenant)
    }

    /// Registers the tenant's keyspace in the catalogue, or finds it registered: refuses
    /// a keyspace name that belongs to another tenant, and a keyspace the catalogue
    /// lists as ready that has gone missing. Returns whether it was ready.
    async fn register(&self, tenant: &Tenant, keyspace: &str) -> Result<bool, StoreError> {
        let cat = &self.catalogue;
        let name = tenant.as_str();
        cat.ks
            .lwt(
                "register tenant",
                &cat.claim,
                (keyspace, name, flywheel_schemas::now_micros()),
            )
            .await?;
        let row: Option<(Option<String>, Option<bool>)> = cat
            .ks
            .one("look up tenant", &cat.owner.serial(&self.conn), (keyspace,))
            .await?;
        let Some((owner, ready)) = row else {
            return Err(cat.ks.corrupt(
                format!("tenant {name:?}"),
                "registered, then not found in the catalogue",
            ));
        };
        if owner.as_deref() != Some(name) {
            return Err(StoreError::conflict(
                format!("keyspace {keyspace}"),
                format!(
                    "it belongs to tenant {:?}; tenant {name:?} has the same keyspace name \
                     ('-' is written '_' in keyspace names)",
                    owner.unwrap_or_default()
                ),
            ));
        }
        let ready = ready.unwrap_or(false);
        if ready {
            let found: Option<(String,)> = cat
                .ks
                .one("look up keyspace", &cat.keyspace_exists, (keyspace,))
                .await?;
            if found.is_none() {
                // never answer a lost keyspace with a new empty one
                return Err(StoreError::NotFound(format!(
                    "keyspace {keyspace} of tenant {name:?}, listed in the catalogue {},",
                    cat.ks.describe()
                )));
            }
        }
        Ok(ready)
    }

    /// Opens a tenant: registers its keyspace in the catalogue, creates and migrates it,
    /// marks it ready and prepares its statements.
    async fn open_tenant(
        &self,
        tenant: &Tenant,
        keyspace: String,
    ) -> Result<ScyllaTenant, StoreError> {
        let ready = self.register(tenant, &keyspace).await?;
        let ks = Ks::new(Arc::clone(&self.conn), keyspace.clone());
        schema::migrate(&ks, &schema::TENANT, self.replication).await?;
        if !ready {
            self.catalogue
                .ks
                .lwt(
                    "register tenant",
                    &self.catalogue.ready,
                    (&keyspace, tenant.as_str()),
                )
                .await?;
        }
        let st = Statements::prepare(&ks).await?;
        Ok(ScyllaTenant {
            tenant: tenant.clone(),
            ks,
            st,
        })
    }
}

#[async_trait]
impl MetaStore for ScyllaStore {
    fn url(&self) -> &str {
        &self.conn.url
    }

    async fn tenant(&self, tenant: &Tenant) -> Result<Arc<dyn TenantStore>, StoreError> {
        // a name that cannot be a keyspace is refused before it takes a place in the map
        let keyspace = self.tenant_keyspace(tenant)?;
        let t = self
            .tenants
            .get_or_try_open(tenant, || self.open_tenant(tenant, keyspace))
            .await?;
        Ok(t)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let cat = &self.catalogue;
        let rows: Vec<(Option<String>,)> = cat.ks.all("list tenants", &cat.all, ()).await?;
        let mut out = rows
            .into_iter()
            .map(|(name,)| {
                let name = name.unwrap_or_default();
                Tenant::new(&name).map_err(|e| {
                    cat.ks
                        .corrupt(format!("tenant name {name:?}"), e.to_string())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        Ok(out)
    }
}

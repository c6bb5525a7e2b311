//! `scylla://HOST:PORT[,HOST:PORT...][?PARAMS]`: the URL's nodes and settings, and the
//! keyspace names derived from them. Pure functions; nothing here talks to a server.

use std::time::Duration;

use flywheel_topics::Tenant;
use scylla::statement::{Consistency, SerialConsistency};

use crate::StoreError;

/// The port a node listens on for CQL when the URL names none.
pub(crate) const DEFAULT_PORT: u16 = 9042;

/// CQL's limit on the length of a keyspace name.
pub(crate) const MAX_KEYSPACE_LEN: usize = 48;

/// Appended to the prefix for the store's own keyspace.
const CATALOGUE_SUFFIX: &str = "_catalogue";

/// The URL's query parameters and what they mean, for messages.
pub(crate) const PARAMETERS: &str = "keyspace_prefix=NAME (default flywheel), \
     replication=N (default: 3, or fewer when the cluster has fewer nodes), \
     consistency=quorum|local_quorum (default quorum), connect_timeout=DURATION (default 5s)";

/// Why `consistency=one` is refused, for its message.
const ONE_REFUSED: &str = "a read at ONE can see a dataset head whose entries have not \
     reached the replica it reads, and a commit's key check at ONE can miss a key in the view; \
     use quorum, or local_quorum with every writer of a tenant in one data center";

/// The consistency level of reads and writes; lightweight transactions use the matching
/// serial level. Both need a quorum: the commit protocol reads what the last commit
/// wrote. With `LocalQuorum` every writer of a tenant must be in one data center, since
/// `LOCAL_SERIAL` is only linearizable within a data center.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Quorum,
    LocalQuorum,
}

impl Level {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "quorum" => Ok(Level::Quorum),
            "local_quorum" => Ok(Level::LocalQuorum),
            "one" => Err(format!("not supported: {ONE_REFUSED}")),
            _ => Err("expected quorum or local_quorum".into()),
        }
    }

    /// The level of plain reads and writes.
    pub(crate) fn consistency(self) -> Consistency {
        match self {
            Level::Quorum => Consistency::Quorum,
            Level::LocalQuorum => Consistency::LocalQuorum,
        }
    }

    /// The level of the Paxos round of lightweight transactions (and of serial reads).
    pub(crate) fn serial(self) -> SerialConsistency {
        match self {
            Level::LocalQuorum => SerialConsistency::LocalSerial,
            Level::Quorum => SerialConsistency::Serial,
        }
    }

    /// The read level that sees the outcome of every finished lightweight transaction.
    pub(crate) fn serial_read(self) -> Consistency {
        match self {
            Level::LocalQuorum => Consistency::LocalSerial,
            Level::Quorum => Consistency::Serial,
        }
    }
}

/// What a `scylla://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `host:port` of each node to contact first (`[v6]:port` for IPv6 addresses).
    pub(crate) nodes: Vec<String>,
    /// Keyspaces are `{prefix}_catalogue` and `{prefix}_{tenant}`.
    pub(crate) keyspace_prefix: String,
    /// Replication factor of new keyspaces; `None`: 3, or the number of nodes if fewer.
    pub(crate) replication: Option<u32>,
    pub(crate) level: Level,
    /// How long connecting to a node may take.
    pub(crate) connect_timeout: Duration,
}

impl Config {
    /// Parses `scylla://HOST[:PORT][,HOST[:PORT]...][?PARAMS]`.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("scylla://")
            .ok_or_else(|| invalid("expected scylla://HOST:PORT".into()))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        if hosts.is_empty() {
            return Err(invalid(
                "scylla:// needs at least one node, e.g. scylla://127.0.0.1:9042".into(),
            ));
        }
        let nodes = hosts
            .split(',')
            .map(|node| parse_node(node).map_err(&invalid))
            .collect::<Result<Vec<_>, _>>()?;

        let mut config = Config {
            nodes,
            keyspace_prefix: "flywheel".into(),
            replication: None,
            level: Level::Quorum,
            connect_timeout: Duration::from_secs(5),
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "keyspace_prefix" => {
                    check_prefix(&value).map_err(|reason| {
                        invalid(format!("keyspace_prefix={value:?}: {reason}"))
                    })?;
                    config.keyspace_prefix = value.into_owned();
                }
                "replication" => {
                    config.replication = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| (1..=15).contains(n))
                            .ok_or_else(|| {
                                invalid(format!("replication={value:?}: expected 1 to 15"))
                            })?,
                    );
                }
                "consistency" => {
                    config.level = Level::parse(&value)
                        .map_err(|reason| invalid(format!("consistency={value:?}: {reason}")))?;
                }
                "connect_timeout" => {
                    let t = humantime::parse_duration(&value)
                        .map_err(|e| invalid(format!("connect_timeout={value:?}: {e}")))?;
                    if t.is_zero() || t > Duration::from_secs(600) {
                        return Err(invalid(format!(
                            "connect_timeout={value}: expected more than 0 and at most 10 minutes"
                        )));
                    }
                    config.connect_timeout = t;
                }
                other => {
                    return Err(invalid(format!(
                        "unknown parameter {other:?}; supported: {PARAMETERS}"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The store's own keyspace: schema version and the tenants.
    pub(crate) fn catalogue_keyspace(&self) -> String {
        format!("{}{CATALOGUE_SUFFIX}", self.keyspace_prefix)
    }

    /// A tenant's keyspace, `{prefix}_{tenant}` with `-` written `_` (CQL names are
    /// `[a-z0-9_]`). Two tenants that differ only there would share a name: the catalogue
    /// records which tenant a keyspace belongs to and refuses the second.
    pub(crate) fn tenant_keyspace(&self, tenant: &Tenant) -> Result<String, StoreError> {
        let ks = format!(
            "{}_{}",
            self.keyspace_prefix,
            tenant.as_str().replace('-', "_")
        );
        let what = || format!("tenant {:?}", tenant.as_str());
        if ks.len() > MAX_KEYSPACE_LEN {
            return Err(StoreError::invalid(
                what(),
                format!(
                    "its keyspace name {ks} is {} characters long, over CQL's limit of \
                     {MAX_KEYSPACE_LEN}; with keyspace_prefix={} tenant names may have at \
                     most {} characters",
                    ks.len(),
                    self.keyspace_prefix,
                    MAX_KEYSPACE_LEN - self.keyspace_prefix.len() - 1
                ),
            ));
        }
        if ks == self.catalogue_keyspace() {
            return Err(StoreError::invalid(
                what(),
                format!("its keyspace name {ks} is the store's catalogue keyspace"),
            ));
        }
        Ok(ks)
    }
}

/// `host[:port]` or `[v6]:port` -> `host:port`.
fn parse_node(node: &str) -> Result<String, String> {
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("node {node:?}: missing ']' after an IPv6 address"))?;
        if addr.is_empty() {
            return Err(format!("node {node:?}: empty IPv6 address"));
        }
        match after {
            "" => (format!("[{addr}]"), None),
            p => match p.strip_prefix(':') {
                Some(p) => (format!("[{addr}]"), Some(p)),
                None => return Err(format!("node {node:?}: expected ':PORT' after ']'")),
            },
        }
    } else {
        match node.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => {
                return Err(format!(
                    "node {node:?}: write IPv6 addresses in brackets, e.g. [::1]:9042"
                ));
            }
            None => (node.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("node {node:?}: empty host name"));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._[]:".contains(*c)))
    {
        return Err(format!("node {node:?}: unexpected character {bad:?}"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("node {node:?}: port {p:?} is not 1 to 65535"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// A keyspace prefix: `[a-z][a-z0-9_]*`, short enough for `{prefix}_catalogue`.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let max = MAX_KEYSPACE_LEN - CATALOGUE_SUFFIX.len();
    if prefix.is_empty() || prefix.len() > max {
        return Err(format!("must be 1 to {max} characters long"));
    }
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err("may only contain a-z, 0-9 and '_'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let c = Config::parse("scylla://127.0.0.1:9042").unwrap();
        assert_eq!(c.nodes, ["127.0.0.1:9042"]);
        assert_eq!(c.keyspace_prefix, "flywheel");
        assert_eq!(c.replication, None);
        assert_eq!(c.level, Level::Quorum);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.catalogue_keyspace(), "flywheel_catalogue");

        let c = Config::parse(
            "scylla://a.example:19042,b,[::1]:9043,[fe80::1]/?keyspace_prefix=fw_test&replication=3\
             &consistency=local_quorum&connect_timeout=250ms",
        )
        .unwrap();
        assert_eq!(
            c.nodes,
            ["a.example:19042", "b:9042", "[::1]:9043", "[fe80::1]:9042"]
        );
        assert_eq!(c.keyspace_prefix, "fw_test");
        assert_eq!(c.replication, Some(3));
        assert_eq!(c.level, Level::LocalQuorum);
        assert_eq!(c.level.serial(), SerialConsistency::LocalSerial);
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.level.serial_read(), Consistency::LocalSerial);
        let c = Config::parse("scylla://h?consistency=quorum").unwrap();
        assert_eq!(
            (
                c.level.consistency(),
                c.level.serial(),
                c.level.serial_read()
            ),
            (
                Consistency::Quorum,
                SerialConsistency::Serial,
                Consistency::Serial
            )
        );
    }

    #[test]
    fn malformed_urls_name_the_part() {
        for (bad, says) in [
            ("scylla://", "needs at least one node"),
            ("scylla://?replication=1", "needs at least one node"),
            ("scylla://h:0", "port \"0\" is not 1 to 65535"),
            ("scylla://h:70000", "port \"70000\""),
            ("scylla://h:port", "port \"port\""),
            ("scylla://a,,b", "empty host name"),
            ("scylla://:9042", "empty host name"),
            ("scylla://::1:9042", "IPv6 addresses in brackets"),
            ("scylla://[::1:9042", "missing ']'"),
            ("scylla://[::1]x", "expected ':PORT'"),
            ("scylla://h o:1", "unexpected character ' '"),
            (
                "scylla://h?replication=0",
                "replication=\"0\": expected 1 to 15",
            ),
            ("scylla://h?replication=x", "replication=\"x\""),
            (
                "scylla://h?consistency=all",
                "consistency=\"all\": expected quorum or local_quorum",
            ),
            (
                "scylla://h?consistency=one",
                "consistency=\"one\": not supported: a read at ONE can see a dataset head",
            ),
            (
                "scylla://h?consistency=ONE",
                "expected quorum or local_quorum",
            ),
            (
                "scylla://h?connect_timeout=soon",
                "connect_timeout=\"soon\"",
            ),
            ("scylla://h?connect_timeout=0s", "connect_timeout=0s"),
            ("scylla://h?connect_timeout=1h", "at most 10 minutes"),
            ("scylla://h?keyspace_prefix=", "keyspace_prefix=\"\""),
            ("scylla://h?keyspace_prefix=Fly", "lowercase letter"),
            ("scylla://h?keyspace_prefix=1fly", "lowercase letter"),
            ("scylla://h?keyspace_prefix=fly-wheel", "a-z, 0-9 and '_'"),
            (
                "scylla://h?keyspace_prefix=abcdefghijabcdefghijabcdefghijabcdefghij",
                "1 to 38 characters",
            ),
            ("scylla://h?tls=1", "unknown parameter \"tls\""),
            ("cassandra://h", "expected scylla://"),
        ] {
            let err = Config::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::InvalidUrl { .. }), "{bad}: {msg}");
            assert!(msg.contains(bad) && msg.contains(says), "{bad}: {msg}");
        }
    }

    #[test]
    fn keyspace_names() {
        let c = Config::parse("scylla://h").unwrap();
        let ks = |t: &str| c.tenant_keyspace(&Tenant::new(t).unwrap());
        assert_eq!(ks("acme").unwrap(), "flywheel_acme");
        assert_eq!(ks("acme-corp_2").unwrap(), "flywheel_acme_corp_2");
        assert_eq!(ks("7up").unwrap(), "flywheel_7up");
        // 48 characters fit, 49 do not
        let longest = "a".repeat(48 - "flywheel_".len());
        assert_eq!(ks(&longest).unwrap().len(), 48);
        let err = ks(&format!("{longest}b")).unwrap_err().to_string();
        assert!(
            err.contains("49 characters long, over CQL's limit of 48")
                && err.contains("at most 39 characters"),
            "{err}"
        );
        let err = ks("catalogue").unwrap_err().to_string();
        assert!(err.contains("the store's catalogue keyspace"), "{err}");

        let short = Config::parse("scylla://h?keyspace_prefix=f").unwrap();
        assert_eq!(
            short
                .tenant_keyspace(&Tenant::new(&"x".repeat(46)).unwrap())
                .unwrap()
                .len(),
            48
        );
    }
}

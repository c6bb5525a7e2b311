//! What a `kafka://` URL says: the brokers, librdkafka properties and the bus's own keys
//! (parsed and checked, secrets kept out of every message), and the librdkafka client
//! configurations built from it.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::{BusError, StartFrom};

/// The largest message value accepted, as on the embedded bus (brokers may allow less:
/// Kafka's default `message.max.bytes` is 1 MB; their refusal comes back as an error).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Room for key, headers and batch overhead above the largest value in the producer's
/// own `message.max.bytes`.
const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;
/// How long `message.timeout.ms` lets librdkafka retry a record before failing it.
pub(super) const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Query keys that are ours, not librdkafka's.
const REPLICATION_KEY: &str = "replication";
const CONNECT_ATTEMPTS_KEY: &str = "connect_attempts";
/// librdkafka properties the bus sets itself: overriding them would change its semantics.
const RESERVED: [&str; 8] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "enable.idempotence",
];

/// Whether a query key holds a secret (its value is never shown).
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "jaas",
        "sasl.oauthbearer.config",
        "key.pem",
        "keystore",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The URL with secret query values (and any `user:password@`) replaced by `***`.
fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let head = match head.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, hosts)) => format!("{scheme}://***@{hosts}"),
            None => head.to_owned(),
        },
        None => head.to_owned(),
    };
    let Some(query) = query else {
        return head;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret(k) || is_secret(&percent_decode(k).unwrap_or_default()) => {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                // from_str_radix alone would also take a sign ("%+f")
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a '%' not followed by two hex digits".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_owned())
}

/// Checks one `HOST:PORT` (or `[IPv6]:PORT`).
fn check_broker(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("empty broker address (a stray comma?)".into());
    }
    if b.contains('@') {
        return Err(
            "credentials go in the query (sasl.username=...&sasl.password=...), not before '@'"
                .into(),
        );
    }
    let (host, port) = if let Some(rest) = b.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("'[' without ']'")?;
        (host, after.strip_prefix(':').ok_or("missing :PORT")?)
    } else {
        let (host, port) = b
            .rsplit_once(':')
            .ok_or("missing :PORT, e.g. 127.0.0.1:9092")?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets, e.g. [::1]:9092".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!(
            "host {host:?} has characters a host name cannot have"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {port:?} is not a number in 1..=65535")),
        Ok(_) => Ok(()),
    }
}

/// What a `kafka://` URL says.
#[derive(Clone)]
pub(super) struct Settings {
    /// `kafka://HOSTS`, without the query.
    pub(super) url: String,
    /// The URL as given with secrets replaced, for error messages.
    redacted: String,
    /// `bootstrap.servers`.
    pub(super) brokers: String,
    /// librdkafka properties from the query.
    properties: Vec<(String, String)>,
    pub(super) replication: i32,
    pub(super) connect_attempts: u32,
    pub(super) max_message_bytes: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("Settings")
            .field("brokers", &self.brokers)
            .field("properties", &props)
            .field("replication", &self.replication)
            .field("connect_attempts", &self.connect_attempts)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

pub(super) fn parse_url(url: &str) -> Result<Settings, BusError> {
    let redacted = redact(url);
    let invalid = |reason: String| BusError::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let rest = url.strip_prefix("kafka://").ok_or_else(|| {
        invalid("expected kafka://HOST:PORT[,HOST:PORT...][?property=value&...]".into())
    })?;
    let (hosts, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.is_empty() {
        return Err(invalid(
            "no broker given, e.g. kafka://127.0.0.1:9092".into(),
        ));
    }
    for b in hosts.split(',') {
        check_broker(b).map_err(|reason| {
            let shown = b
                .rsplit_once('@')
                .map_or_else(|| b.to_owned(), |(_, h)| format!("***@{h}"));
            invalid(format!("broker {shown:?}: {reason}"))
        })?;
    }
    let mut settings = Settings {
        url: format!("kafka://{hosts}"),
        redacted: redacted.clone(),
        brokers: hosts.to_owned(),
        properties: Vec::new(),
        replication: 1,
        connect_attempts: 5,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
    };
    let mut seen = BTreeSet::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            invalid(format!(
                "query part {:?} is not KEY=VALUE",
                pair.split('=').next().unwrap_or("")
            ))
        })?;
        let key = percent_decode(k).map_err(|e| invalid(format!("query key {k:?} has {e}")))?;
        let value = percent_decode(v).map_err(|e| invalid(format!("value of {key:?} has {e}")))?;
        if !seen.insert(key.clone()) {
            return Err(invalid(format!("{key:?} is given twice")));
        }
        if RESERVED.contains(&key.as_str()) {
            return Err(invalid(format!(
                "{key:?} is set by flywheel (brokers come from the host list; consumer groups and commits are the bus's)"
            )));
        }
        match key.as_str() {
            REPLICATION_KEY => {
                settings.replication =
                    value
                        .parse()
                        .ok()
                        .filter(|r: &i32| *r >= 1)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{REPLICATION_KEY}={value:?} is not a replication factor >= 1"
                            ))
                        })?;
            }
            CONNECT_ATTEMPTS_KEY => {
                settings.connect_attempts = value
                    .parse()
                    .ok()
                    .filter(|n: &u32| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{CONNECT_ATTEMPTS_KEY}={value:?} is not a number in 1..=1000"
                        ))
                    })?;
            }
            _ => {
                if key == "message.max.bytes" {
                    settings.max_message_bytes = value.parse().map_err(|_| {
                        invalid(format!(
                            "message.max.bytes={value:?} is not a number of bytes"
                        ))
                    })?;
                }
                settings.properties.push((key, value));
            }
        }
    }
    Ok(settings)
}

/// A librdkafka error without a secret property's value in it.
pub(super) fn sanitize(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(res, desc, key, _) if is_secret(&key) => {
            KafkaError::ClientConfig(res, desc, key, "***".into())
        }
        e => e,
    }
}

/// Maps a failed librdkafka call of `op` to a [`BusError`], without secrets.
pub(super) fn kafka(op: &'static str) -> impl Fn(KafkaError) -> BusError {
    move |e| BusError::Kafka {
        op,
        source: sanitize(e),
    }
}

/// A client that could not be created from the URL's properties.
pub(super) fn config_error(settings: &Settings, e: KafkaError) -> BusError {
    let reason = match sanitize(e) {
        KafkaError::ClientConfig(_, desc, key, _) => format!("librdkafka property {key:?}: {desc}"),
        other => other.to_string(),
    };
    BusError::InvalidUrl {
        url: settings.redacted.clone(),
        reason,
    }
}

impl Settings {
    /// Adds what every client gets: the brokers, then the URL's properties (which override
    /// the defaults set before this call).
    fn apply_base(&self, c: &mut ClientConfig) {
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set_log_level(RDKafkaLogLevel::Warning);
    }

    fn defaults() -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("client.id", "flywheel")
            // the bus creates its topics; a broker's auto-creation would hide a typo
            .set("allow.auto.create.topics", "false");
        c
    }

    pub(super) fn admin_config(&self) -> ClientConfig {
        let mut c = Self::defaults();
        self.apply_base(&mut c);
        c
    }

    pub(super) fn producer_config(&self) -> ClientConfig {
        let mut c = Self::defaults();
        c.set("acks", "all")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set(
                "message.max.bytes",
                (self.max_message_bytes + MESSAGE_OVERHEAD_BYTES).to_string(),
            );
        self.apply_base(&mut c);
        c.set("enable.idempotence", "true");
        c
    }

    /// A URL property's value, if the URL sets it.
    pub(super) fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A consumer for `Bus::read`: it is assigned one partition at an offset and never
    /// subscribes or commits. librdkafka's `assign` wants a `group.id`: `group` is a
    /// throwaway name that is never joined and under which nothing is committed.
    pub(super) fn reader_config(&self, group: &str) -> ClientConfig {
        let mut c = Self::defaults();
        self.apply_base(&mut c);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // an offset retention removed meanwhile reads from the oldest kept record
            .set("auto.offset.reset", "earliest");
        c
    }

    pub(super) fn consumer_config(&self, group: &str, start: StartFrom) -> ClientConfig {
        let mut c = Self::defaults();
        c.set("statistics.interval.ms", "1000")
            // pattern subscriptions see new topics within about a second
            .set("topic.metadata.refresh.interval.ms", "1000")
            // a rebalance moves only the partitions that change owner: the others keep
            // their position (as on the embedded bus) instead of rewinding to the commit
            .set("partition.assignment.strategy", "cooperative-sticky");
        self.apply_base(&mut c);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed() {
        let s = parse_url("kafka://a:9092,[::1]:19092/?security.protocol=PLAINTEXT&replication=3&connect_attempts=2&sasl.password=p%26w")
            .unwrap();
        assert_eq!(s.url, "kafka://a:9092,[::1]:19092");
        assert_eq!(s.brokers, "a:9092,[::1]:19092");
        assert_eq!(s.replication, 3);
        assert_eq!(s.connect_attempts, 2);
        assert!(
            s.properties
                .contains(&("sasl.password".into(), "p&w".into()))
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("p&w") && debug.contains("sasl.password=***"),
            "{debug}"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason_and_no_secret() {
        for bad in [
            "",
            "kafka://",
            "kafka://:9092",
            "kafka://host",
            "kafka://host:",
            "kafka://host:0",
            "kafka://host:99999",
            "kafka://host:abc",
            "kafka://a:1,,b:2",
            "kafka://::1:9092",
            "kafka://u:secret@host:9092",
            "kafka://host:9092?replication=0",
            "kafka://host:9092?connect_attempts=x",
            "kafka://host:9092?flag",
            "kafka://host:9092?group.id=g",
            "kafka://host:9092?a=%zz",
            "kafka://host:9092?a=%+f",
            "kafka://host:9092?sasl.password=secret&sasl.password=secret",
            "http://host:9092",
        ] {
            match parse_url(bad) {
                Err(BusError::InvalidUrl { url, reason }) => {
                    assert!(!reason.is_empty());
                    assert!(!url.contains("secret"), "{url}");
                    let msg = BusError::InvalidUrl { url, reason }.to_string();
                    assert!(!msg.contains("secret"), "{msg}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn redaction_hides_secret_values_only() {
        assert_eq!(
            redact("kafka://h:1?sasl.username=u&sasl.password=p&ssl.key.password=k"),
            "kafka://h:1?sasl.username=u&sasl.password=***&ssl.key.password=***"
        );
        assert_eq!(redact("kafka://u:p@h:1"), "kafka://***@h:1");
    }
}

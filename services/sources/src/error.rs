//! Errors of restricted-data sources. Messages are lowercase and name the source (with its
//! host:port at most) and the setting or field that failed. They never hold a password, a
//! connection URL or a value read from a row: the driver's errors are turned into text here,
//! with the secrets cut out, and are not kept as `source()`s that could be printed later.

use std::time::Duration;

/// What went wrong with a restricted-data source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A setting of `[sources.NAME]` is missing or out of range.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting, e.g. `sources.crm.tenants`.
        setting: String,
        /// Why it was refused.
        reason: String,
    },

    /// A source's connection URL could not be read from its variable or file.
    #[error("source {name}: cannot read the connection url from {from}: {reason}")]
    Credentials {
        /// The source.
        name: String,
        /// Where it was looked for: `$VARIABLE` or the file's path.
        from: String,
        /// Why it could not be read (never the value).
        reason: String,
    },

    /// A source's connection URL is malformed.
    #[error("source {name}: invalid connection url: {reason}")]
    InvalidUrl {
        /// The source.
        name: String,
        /// What is wrong with it (never the URL itself).
        reason: String,
    },

    /// The connection URL asks for TLS, which this build cannot do yet.
    #[error(
        "source {name}: the connection url asks for sslmode={mode}, but TLS to sources is not \
         supported yet (use sslmode=disable on a trusted network)"
    )]
    TlsNotSupported {
        /// The source.
        name: String,
        /// The `sslmode` asked for.
        mode: String,
    },

    /// No source of that name is configured for the tenant. The same error whether the source
    /// does not exist or belongs to other tenants, so that no tenant learns another's sources.
    #[error("no source named {name:?} for tenant {tenant}")]
    UnknownSource {
        /// The tenant asking.
        tenant: String,
        /// The name asked for.
        name: String,
    },

    /// The restricted query is unusable before any server sees it (empty SQL, no columns
    /// asked for, parameters).
    #[error("invalid restricted query for source {name}: {field} {reason}")]
    InvalidQuery {
        /// The source.
        name: String,
        /// The field of the query: `source`, `sql`, `label_column`, `feature_columns`.
        field: String,
        /// Why.
        reason: String,
    },

    /// The server could not be reached within the connect timeout (refused, no route, no
    /// answer).
    #[error("source {name} ({address}) is unreachable: {reason}")]
    Unreachable {
        /// The source.
        name: String,
        /// The host:port tried.
        address: String,
        /// What the operating system said, or how long it waited.
        reason: String,
    },

    /// The server refused the credentials.
    #[error("source {name} ({address}) refused the credentials: {reason}")]
    Authentication {
        /// The source.
        name: String,
        /// The server's host:port.
        address: String,
        /// The server's message (it names the user, never the password).
        reason: String,
    },

    /// The server refused the session (a database that does not exist, too many clients) or
    /// the connection was lost.
    #[error("source {name} ({address}): {reason}")]
    Connection {
        /// The source.
        name: String,
        /// The server's host:port.
        address: String,
        /// What happened.
        reason: String,
    },

    /// The server rejected the SQL (syntax, an unknown table or column, a missing
    /// permission); the message is the server's.
    #[error("source {name} rejected sql: {message}")]
    Rejected {
        /// The source.
        name: String,
        /// The server's message, with its hint and the position in the SQL when it gave them.
        message: String,
    },

    /// The SQL writes (or would write): only read-only queries are accepted.
    #[error("source {name}: sql is not read-only ({reason}); only queries that read are accepted")]
    NotReadOnly {
        /// The source.
        name: String,
        /// What writes, e.g. `Delete on accounts`, or the server's refusal.
        reason: String,
    },

    /// A column the query names is not a result column of its SQL, or has a type that
    /// cannot be used for its role.
    #[error("source {name}: {field} {reason}")]
    Column {
        /// The source.
        name: String,
        /// The field of the query: `label_column` or `feature_columns[i]`.
        field: String,
        /// Why, naming the column and its type.
        reason: String,
    },

    /// The statement ran longer than the source's statement timeout and the server canceled
    /// it.
    #[error(
        "source {name}: the statement ran longer than the statement timeout ({}) and was canceled",
        humantime::format_duration(*after)
    )]
    StatementTimeout {
        /// The source.
        name: String,
        /// The source's `statement_timeout`.
        after: Duration,
    },

    /// The server failed the statement while producing rows (a failing cast, a division by
    /// zero). Text the server quoted is masked: it may be a value of a row.
    #[error("source {name}: the statement failed while reading rows: {message} (sqlstate {code})")]
    Execution {
        /// The source.
        name: String,
        /// The SQLSTATE code, e.g. `22P02`.
        code: String,
        /// The server's message with quoted text masked.
        message: String,
    },

    /// A row could not be turned into a label and features (a NULL or non-finite feature).
    #[error("source {name}: row {index}: {field} {reason}")]
    Row {
        /// The source.
        name: String,
        /// The row's 0-based position in the result.
        index: u64,
        /// The field and column, e.g. `feature_columns[1] ("age")`.
        field: String,
        /// Why (never the value).
        reason: String,
    },
}

impl SourceError {
    /// Whether the same call may succeed later unchanged (a server that is down or a
    /// connection that broke); the others need another query, setting or credential.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. } | SourceError::Connection { .. }
        )
    }

    /// Whether the restricted query is at fault (refuse the changeset, e.g. with HTTP 400),
    /// rather than the configuration, the credentials or the server.
    pub fn is_query_error(&self) -> bool {
        matches!(
            self,
            SourceError::UnknownSource { .. }
                | SourceError::InvalidQuery { .. }
                | SourceError::Rejected { .. }
                | SourceError::NotReadOnly { .. }
                | SourceError::Column { .. }
                | SourceError::StatementTimeout { .. }
                | SourceError::Execution { .. }
                | SourceError::Row { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_their_input() {
        let cases = [
            SourceError::UnknownSource {
                tenant: "acme".into(),
                name: "crm".into(),
            },
            SourceError::StatementTimeout {
                name: "crm".into(),
                after: Duration::from_millis(1500),
            },
            SourceError::Row {
                name: "crm".into(),
                index: 7,
                field: "feature_columns[1] (\"age\")".into(),
                reason: "is null".into(),
            },
            SourceError::TlsNotSupported {
                name: "crm".into(),
                mode: "require".into(),
            },
        ];
        for e in &cases {
            let m = e.to_string();
            assert!(!m.starts_with(|c: char| c.is_uppercase()), "{m}");
            assert!(!m.contains("{ "), "no debug dumps: {m}");
        }
        assert_eq!(
            cases[0].to_string(),
            "no source named \"crm\" for tenant acme"
        );
        assert!(cases[1].to_string().contains("(1s 500ms)"));
        assert!(
            cases[2]
                .to_string()
                .contains("row 7: feature_columns[1] (\"age\") is null")
        );
        assert!(
            cases[3]
                .to_string()
                .contains("TLS to sources is not supported yet")
        );
        assert!(cases.iter().all(|e| !e.is_retriable()));
        assert!(cases[0].is_query_error() && !cases[3].is_query_error());
    }
}

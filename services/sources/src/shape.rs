//! The result columns a query's label and features come from: plain functions over the
//! statement's description, testable without a server.

use flywheel_schemas::RestrictedQuery;
use serde_json::Value;
use tokio_postgres::types::Type;

use crate::SourceError;
use crate::convert::{FEATURE_TYPES, LABEL_TYPES, feature_type_ok, label_type_ok};

/// What [`Source::check`](crate::Source::check) found out about a query's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryShape {
    /// Every result column of the statement, in order.
    pub columns: Vec<ResultColumn>,
    /// The position of the label column among `columns`.
    pub label: Option<usize>,
    /// The positions of the feature columns among `columns`, in `feature_columns` order.
    pub features: Vec<usize>,
    /// Whether the SQL has an `ORDER BY` of its own (outside parentheses, comments and
    /// quotes). Without one the server returns rows in no stable order, so two reads of the
    /// same training set may differ. A hint read from the text, not a proof.
    pub ordered: bool,
}

/// A result column of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    /// Its name, as the server reports it.
    pub name: String,
    /// Its PostgreSQL type, e.g. `int4`, `numeric`, `text`.
    pub type_name: String,
}

/// Checks what a query asks for before any server sees it.
pub(crate) fn check_query(source: &str, query: &RestrictedQuery) -> Result<(), SourceError> {
    let invalid = |field: &str, reason: String| {
        Err(SourceError::InvalidQuery {
            name: source.to_owned(),
            field: field.to_owned(),
            reason,
        })
    };
    if query.source != source {
        return invalid(
            "source",
            format!("names source {:?}, not this one", query.source),
        );
    }
    if query.sql.trim().is_empty() {
        return invalid("sql", "is empty".into());
    }
    if query.label_column.is_none() && query.feature_columns.is_empty() {
        return invalid(
            "feature_columns",
            "is empty and there is no label_column: a query needs at least one of them".into(),
        );
    }
    Ok(())
}

/// Finds the label and feature columns among a statement's result columns and checks their
/// types. Errors name the query's field (`label_column`, `feature_columns[i]`).
pub(crate) fn resolve(
    source: &str,
    query: &RestrictedQuery,
    columns: &[(String, Type)],
) -> Result<QueryShape, SourceError> {
    let column_error = |field: String, reason: String| SourceError::Column {
        name: source.to_owned(),
        field,
        reason,
    };
    let find = |field: String, wanted: &str| -> Result<usize, SourceError> {
        let mut at = columns
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| name == wanted)
            .map(|(i, _)| i);
        match (at.next(), at.next()) {
            (Some(i), None) => Ok(i),
            (Some(_), Some(_)) => Err(column_error(
                field,
                format!(
                    "{wanted:?} names more than one result column of the sql (rename them with AS)"
                ),
            )),
            (None, _) => Err(column_error(
                field,
                format!(
                    "{wanted:?} is not a result column of the sql (it returns {})",
                    list(columns)
                ),
            )),
        }
    };
    let label = match &query.label_column {
        Some(wanted) => {
            let i = find("label_column".into(), wanted)?;
            let ty = &columns[i].1;
            if !label_type_ok(ty) {
                return Err(column_error(
                    "label_column".into(),
                    format!(
                        "{wanted:?} has type {}; a label must be {LABEL_TYPES} (cast it in the sql)",
                        ty.name()
                    ),
                ));
            }
            Some(i)
        }
        None => None,
    };
    let mut features = Vec::with_capacity(query.feature_columns.len());
    for (k, wanted) in query.feature_columns.iter().enumerate() {
        let field = format!("feature_columns[{k}]");
        let i = find(field.clone(), wanted)?;
        let ty = &columns[i].1;
        if !feature_type_ok(ty) {
            return Err(column_error(
                field,
                format!(
                    "{wanted:?} has type {}; a feature must be {FEATURE_TYPES} (cast it in the sql)",
                    ty.name()
                ),
            ));
        }
        features.push(i);
    }
    Ok(QueryShape {
        columns: columns
            .iter()
            .map(|(name, ty)| ResultColumn {
                name: name.clone(),
                type_name: ty.name().to_owned(),
            })
            .collect(),
        label,
        features,
        ordered: has_order_by(&query.sql),
    })
}

/// `a (int4), b (text)`, or `no columns`.
fn list(columns: &[(String, Type)]) -> String {
    if columns.is_empty() {
        return "no columns".into();
    }
    columns
        .iter()
        .map(|(name, ty)| format!("{name:?} ({})", ty.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `sql` has `ORDER BY` outside parentheses, comments and quoted text.
pub(crate) fn has_order_by(sql: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut chars = sql.chars().peekable();
    let mut word = String::new();
    let end_word = |word: &mut String, depth: usize, words: &mut Vec<String>| {
        if !word.is_empty() {
            if depth == 0 {
                words.push(word.to_ascii_lowercase());
            }
            word.clear();
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                end_word(&mut word, depth, &mut words);
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                end_word(&mut word, depth, &mut words);
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '\'' | '"' => {
                end_word(&mut word, depth, &mut words);
                // A doubled quote inside is an escaped quote: the scan leaves and re-enters.
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                }
            }
            '(' => {
                end_word(&mut word, depth, &mut words);
                depth += 1;
            }
            ')' => {
                end_word(&mut word, depth, &mut words);
                depth = depth.saturating_sub(1);
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => end_word(&mut word, depth, &mut words),
        }
    }
    end_word(&mut word, depth, &mut words);
    words.windows(2).any(|w| w[0] == "order" && w[1] == "by")
}

/// What a plan of `EXPLAIN (FORMAT JSON)` writes, e.g. `Delete on accounts`: the first
/// `ModifyTable` node anywhere in it (data-modifying CTEs included).
pub(crate) fn plan_writes(plan: &Value) -> Option<String> {
    match plan {
        Value::Object(node) => {
            if node.get("Node Type").and_then(Value::as_str) == Some("ModifyTable") {
                let op = node
                    .get("Operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Modify");
                return Some(match node.get("Relation Name").and_then(Value::as_str) {
                    Some(table) => format!("{op} on {table}"),
                    None => op.to_owned(),
                });
            }
            node.values().find_map(plan_writes)
        }
        Value::Array(items) => items.iter().find_map(plan_writes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(label: Option<&str>, features: &[&str]) -> RestrictedQuery {
        RestrictedQuery {
            source: "crm".into(),
            sql: "SELECT * FROM t ORDER BY id".into(),
            label_column: label.map(Into::into),
            feature_columns: features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn columns() -> Vec<(String, Type)> {
        vec![
            ("id".into(), Type::INT8),
            ("name".into(), Type::TEXT),
            ("age".into(), Type::INT4),
            ("score".into(), Type::NUMERIC),
            ("seen".into(), Type::TIMESTAMPTZ),
            ("dup".into(), Type::INT4),
            ("dup".into(), Type::INT4),
        ]
    }

    #[test]
    fn finds_label_and_features() {
        let shape = resolve(
            "crm",
            &query(Some("name"), &["age", "score", "id"]),
            &columns(),
        )
        .unwrap();
        assert_eq!(shape.label, Some(1));
        assert_eq!(shape.features, [2, 3, 0]);
        assert!(shape.ordered);
        assert_eq!(shape.columns[3].type_name, "numeric");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                query(Some("nom"), &["age"]),
                "label_column \"nom\" is not a result column of the sql (it returns \"id\" (int8), \"name\" (text)",
            ),
            (
                query(Some("seen"), &["age"]),
                "label_column \"seen\" has type timestamptz; a label must be",
            ),
            (
                query(None, &["age", "name"]),
                "feature_columns[1] \"name\" has type text; a feature must be int2",
            ),
            (
                query(None, &["age", "seen"]),
                "feature_columns[1] \"seen\" has type timestamptz",
            ),
            (
                query(None, &["dup"]),
                "feature_columns[0] \"dup\" names more than one result column",
            ),
            (
                query(None, &["age", "Age"]),
                "feature_columns[1] \"Age\" is not a result column",
            ),
        ];
        for (q, expected) in cases {
            let err = resolve("crm", &q, &columns()).unwrap_err();
            assert!(matches!(err, SourceError::Column { .. }), "{err:?}");
            let err = err.to_string();
            assert!(err.starts_with("source crm: "), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let err = resolve("crm", &query(Some("x"), &[]), &[]).unwrap_err();
        assert!(err.to_string().contains("(it returns no columns)"), "{err}");
    }

    #[test]
    fn query_fields_are_checked_first() {
        let mut q = query(None, &[]);
        let err = check_query("crm", &q).unwrap_err().to_string();
        assert!(
            err.contains("feature_columns is empty and there is no label_column"),
            "{err}"
        );
        q.feature_columns.push("age".into());
        check_query("crm", &q).unwrap();
        let err = check_query("hr", &q).unwrap_err().to_string();
        assert!(
            err.contains("source names source \"crm\", not this one"),
            "{err}"
        );
        q.sql = " \n".into();
        let err = check_query("crm", &q).unwrap_err().to_string();
        assert_eq!(err, "invalid restricted query for source crm: sql is empty");
    }

    #[test]
    fn order_by_at_the_top_level_only() {
        assert!(has_order_by("select * from t order by id"));
        assert!(has_order_by("SELECT a FROM t\nORDER\n  BY a DESC;"));
        assert!(has_order_by(
            "with q as (select * from t) select * from q order by 1"
        ));
        assert!(has_order_by("select 1 union select 2 order by 1"));
        assert!(!has_order_by("select * from t"));
        assert!(!has_order_by(
            "select * from (select * from t order by id) s"
        ));
        assert!(!has_order_by(
            "select row_number() over (order by id) from t"
        ));
        assert!(!has_order_by("select 'order by' from t -- order by id"));
        assert!(!has_order_by("select /* order by */ \"order by\" from t"));
        assert!(!has_order_by("select border, bye from t"));
    }

    #[test]
    fn writes_found_anywhere_in_a_plan() {
        let read: Value = serde_json::from_str(
            r#"[{"Plan": {"Node Type": "Sort", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t"}]}}]"#,
        )
        .unwrap();
        assert_eq!(plan_writes(&read), None);
        let delete: Value = serde_json::from_str(
            r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete", "Relation Name": "accounts", "Plans": []}}]"#,
        )
        .unwrap();
        assert_eq!(plan_writes(&delete).as_deref(), Some("Delete on accounts"));
        let cte: Value = serde_json::from_str(
            r#"[{"Plan": {"Node Type": "CTE Scan", "Plans": [{"Node Type": "ModifyTable", "Operation": "Update", "Relation Name": "t", "Subplan Name": "CTE d"}]}}]"#,
        )
        .unwrap();
        assert_eq!(plan_writes(&cte).as_deref(), Some("Update on t"));
    }
}

//! The rows a fetch streams to the reader of a training set.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::SourceError;
use crate::shape::QueryShape;

/// One row of a restricted query: the label and features it was asked for. Its `Debug` hides
/// the label and the features, so that a row logged by mistake does not leak restricted data.
#[derive(Clone, PartialEq)]
pub struct RestrictedRow {
    /// The row's 0-based position in the result.
    pub index: u64,
    /// The label column's value as text (integers in decimal, booleans as `true`/`false`);
    /// `None` for a NULL or when the query has no label column.
    pub label: Option<String>,
    /// The feature columns' values, in `feature_columns` order; always finite.
    pub features: Vec<f64>,
}

impl fmt::Debug for RestrictedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestrictedRow")
            .field("index", &self.index)
            .field(
                "label",
                &self.label.as_ref().map(|_| format_args!("[redacted]")),
            )
            .field(
                "features",
                &format_args!("[{} redacted]", self.features.len()),
            )
            .finish()
    }
}

/// The rows of a fetch, in result order, read from the server a batch at a time while the
/// stream is polled. An error is the last item. Dropping the stream stops the reading and
/// closes the session.
pub struct RestrictedRows {
    pub(crate) rows: mpsc::Receiver<Result<RestrictedRow, SourceError>>,
    pub(crate) shape: QueryShape,
    pub(crate) task: AbortHandle,
}

impl RestrictedRows {
    /// The statement's result columns and where the label and features come from.
    pub fn shape(&self) -> &QueryShape {
        &self.shape
    }
}

impl Stream for RestrictedRows {
    type Item = Result<RestrictedRow, SourceError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rows.poll_recv(cx)
    }
}

impl Drop for RestrictedRows {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RestrictedRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestrictedRows")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_data() {
        let row = RestrictedRow {
            index: 3,
            label: Some("diabetic".into()),
            features: vec![71.25, 180.0],
        };
        let debug = format!("{row:?}");
        assert_eq!(
            debug,
            "RestrictedRow { index: 3, label: Some([redacted]), features: [2 redacted] }"
        );
    }
}

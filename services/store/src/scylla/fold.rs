//! The fold of a key's history into the view: the pure core of every view read.
//!
//! The view tables hold, per key, one entry per changeset that touched it: an add (with
//! the row), a remove, or a relabel (with the new label). Read in changeset order, the
//! key is in the view at changeset N when its last add up to N is not followed by a
//! remove up to N; its label is the add's, or that of the last relabel after it.

use crate::model::IndexRow;

/// What a changeset did to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Added it, with this row.
    Add(IndexRow),
    /// Removed it.
    Remove,
    /// Gave it this label (`None`: no label).
    Relabel(Option<String>),
}

/// The code of each kind of entry in the `op` column.
pub(crate) const OP_ADD: i8 = 1;
pub(crate) const OP_REMOVE: i8 = 2;
pub(crate) const OP_RELABEL: i8 = 3;

/// Folds a stream of entries, grouped by `G` (a key, or an event time and a key) and in
/// changeset order within a group, into the rows of the view as of changeset `as_of`.
/// Entries past `as_of` are skipped (they may belong to a commit still under way).
#[derive(Debug)]
pub(crate) struct Folder<G> {
    as_of: i64,
    group: Option<G>,
    state: Option<IndexRow>,
}

impl<G: PartialEq> Folder<G> {
    pub(crate) fn new(as_of: i64) -> Self {
        Self {
            as_of,
            group: None,
            state: None,
        }
    }

    /// Takes the next entry; returns the row of the previous group when this one starts
    /// a new group and the previous one ended in the view.
    pub(crate) fn push(&mut self, group: G, changeset: i64, event: Event) -> Option<IndexRow> {
        let done = if self.group.as_ref() == Some(&group) {
            None
        } else {
            self.group = Some(group);
            self.state.take()
        };
        if changeset <= self.as_of {
            match event {
                Event::Add(row) => self.state = Some(row),
                Event::Remove => self.state = None,
                Event::Relabel(label) => {
                    if let Some(row) = &mut self.state {
                        row.label = label;
                    }
                }
            }
        }
        done
    }

    /// The row of the last group, if it ended in the view.
    pub(crate) fn finish(&mut self) -> Option<IndexRow> {
        self.group = None;
        self.state.take()
    }
}

/// The view's row of one key from its entries in changeset order.
#[cfg(test)]
pub(crate) fn fold_key(
    entries: impl IntoIterator<Item = (i64, Event)>,
    as_of: i64,
) -> Option<IndexRow> {
    let mut f = Folder::new(as_of);
    for (changeset, event) in entries {
        f.push((), changeset, event);
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SampleLocation;

    fn row(key: u64, changeset: i64, label: &str) -> IndexRow {
        IndexRow {
            key,
            changeset,
            location: SampleLocation::Blob {
                uri: format!("file:///{key}"),
            },
            label: Some(label.into()),
            event_time: 0,
            size: 1,
        }
    }

    fn label(s: &str) -> Option<String> {
        Some(s.into())
    }

    #[test]
    fn a_key_history_folds_at_every_changeset() {
        // added at 1, relabelled at 2, removed at 3, relabel-free re-add at 5, relabel at 6
        let history = || {
            vec![
                (1, Event::Add(row(9, 1, "a"))),
                (2, Event::Relabel(label("b"))),
                (3, Event::Remove),
                (5, Event::Add(row(9, 5, "c"))),
                (6, Event::Relabel(None)),
            ]
        };
        let at = |n| fold_key(history(), n).map(|r| (r.changeset, r.label));
        assert_eq!(at(0), None);
        assert_eq!(at(1), Some((1, label("a"))));
        assert_eq!(at(2), Some((1, label("b"))));
        assert_eq!(at(3), None);
        assert_eq!(at(4), None);
        assert_eq!(
            at(5),
            Some((5, label("c"))),
            "an old relabel does not follow"
        );
        assert_eq!(at(6), Some((5, None)));
        assert_eq!(at(i64::MAX), at(6));
        // a relabel or remove of a key not in the view changes nothing
        assert_eq!(fold_key([(1, Event::Relabel(label("x")))], 9), None);
        assert_eq!(fold_key([(1, Event::Remove)], 9), None);
    }

    #[test]
    fn groups_emit_their_rows_in_order() {
        let mut f = Folder::new(4);
        let mut out = Vec::new();
        let entries = [
            (1u64, 1, Event::Add(row(1, 1, "a"))),
            (1, 3, Event::Relabel(label("z"))),
            (2, 1, Event::Add(row(2, 1, "a"))),
            (2, 2, Event::Remove),
            (3, 2, Event::Add(row(3, 2, "b"))),
            (3, 5, Event::Remove), // past as_of: a commit under way
            (4, 5, Event::Add(row(4, 5, "c"))),
            (5, 4, Event::Add(row(5, 4, "d"))),
        ];
        for (key, changeset, event) in entries {
            out.extend(f.push(key, changeset, event));
        }
        out.extend(f.finish());
        let got: Vec<(u64, Option<String>)> = out.into_iter().map(|r| (r.key, r.label)).collect();
        assert_eq!(got, [(1, label("z")), (3, label("b")), (5, label("d"))]);
        assert_eq!(f.finish(), None);
    }
}

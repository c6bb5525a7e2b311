//! flywheel's training sets, the Salesforce "virtual dataset" made concrete: a training
//! set is a query over a dataset's changesets ([`QueryRequest`]), pinned to a changeset and
//! named by the hash of its canonical form ([`Version`]). Preparing it ([`prepare`])
//! writes its manifest (every selected sample, in a deterministic order) to the blob
//! store; reading it serves the manifest's shards as WebDataset-style tar archives
//! ([`stored_shard`]).

mod error;
mod keys;
pub mod manifest;
mod prepare;
mod query;
mod shard;
mod summary;

pub use error::TrainsetError;
pub use keys::{
    KeyList, decode_key_list, encode_key_list, is_digest, key_list_path, put_key_list,
    read_key_list,
};
pub use manifest::{Entry, Footer, RestrictedPart, ShardSpan};
pub use prepare::{Prepared, manifest_path, prepare, read_footer};
pub use query::{
    ChangesetRange, Query, QueryRequest, Selection, Version, format_changesets, parse_changesets,
};
pub use shard::{own_object, restricted_shard, stored_shard, tar_end, tar_member};
pub use summary::{LabelCount, Summary};

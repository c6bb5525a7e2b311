//! flywheel's synthetic collectors ([`streams`]), shared by `loadgen` and `flywheel demo`.

pub mod streams;

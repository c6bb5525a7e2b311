//! flywheel's domain core: the pure parts of the supervisor, with no I/O. Trigger policies
//! decide when a pipeline retrains, selection policies on which samples; both are functions
//! over compact state that the supervisor keeps in the metadata store.

pub mod card;
pub mod drift;
pub mod pipeline;
pub mod selection;
pub mod trigger;

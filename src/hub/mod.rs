//! Model name → files on disk: the curated registry, Hub download and cache, local
//! paths, and opening the weights found there.

pub mod download;
mod fetch;
pub mod registry;
pub mod validate;
pub mod weights;

pub use download::{
    cached_status, remove, resolve, CacheStatus, CachedFile, FetchOptions, ModelFiles,
};
pub use registry::{Architecture, FileEntry, FileRole, ModelEntry, Origin, Registry, Task};
pub use weights::{var_builder, weights_format, WeightsFormat};

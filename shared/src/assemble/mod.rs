//! Making layers and images from what Go built: deterministic, parallel-gzipped tar layers
//! written into the cache (the application binary, kodata, Delve), blocks reused from the
//! last layer of a binary, and images assembled on a base. Takes values from `gobuild` and
//! `base`, writes files; knows nothing of where images go (a layer's compressed bytes can
//! be copied to a plain [`std::io::Write`] while they are made, see [`layer::LayerCopy`]).

pub mod app;
pub mod gzip;
pub mod image;
pub mod kodata;
pub mod layer;
pub mod reuse;
pub mod target;

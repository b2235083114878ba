//! The seam between making images and publishing them. The builder tells a [`LayerSink`]
//! about layers as soon as it knows them: blobs an image will hold (so a destination can
//! start finding out which it has while Go builds) and new layers while they are compressed
//! (so their upload can run meanwhile). The builder knows nothing of where images go; both
//! methods have do-nothing defaults for a sink that wants none of this.

use std::io::Write;

use crate::digest::Digest;

/// What the publisher wants to hear about layers before it gets the finished images.
pub trait LayerSink: Send + Sync {
    /// `import_path`'s image will hold these blobs (base layers, kodata): the sink may start
    /// finding out, in the background, whether its destination has them.
    fn expect(&self, _import_path: &str, _digests: &[&Digest]) {}

    /// A new layer of `import_path`'s image is about to be compressed: where a copy of its
    /// compressed bytes goes as they are made, if the sink wants one. Called on the thread
    /// that compresses, off the async runtime's workers.
    fn stream(&self, _import_path: &str) -> Option<LayerStream> {
        None
    }
}

/// A copy of one layer's compressed bytes on its way to a destination.
pub struct LayerStream {
    /// Takes the bytes in order, on the thread that compresses (it may block). Best effort:
    /// once it fails, the layer is made without it.
    pub copy: Box<dyn Write + Send>,
    /// Told the layer's digest once the layer is complete; dropped unused if making it failed.
    pub done: Box<dyn FnOnce(&Digest) + Send>,
}

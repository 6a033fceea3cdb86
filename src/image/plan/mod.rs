//! Planning a job from a source's header and the options, before any
//! pixel exists: the geometry (which region becomes which size,
//! [`geometry`]), the JPEG shrink-on-load factor ([`shrink`]) and the
//! memory the job will need at its peak ([`estimate`]), which is reserved
//! before it runs. Plain functions over the codec's types.

pub mod estimate;
pub mod geometry;
pub mod options;
pub mod shrink;

//! Bulk download: many origin entries streamed into one zip, never holding
//! a body whole.
//!
//! Data flows one way: manifest ([`manifest`], [`names`], [`media`]) ▶
//! entry scheduler ([`scheduler`], prefetch into bounded buffers reserved
//! from the memory budget) ▶ zip writer ([`writer`], a sans-IO encoder) ▶
//! the client's body ([`archive`]). [`probe`] learns missing sizes with
//! HEADs first, when a JSON manifest asks for it. Entries with `options`/`variants` are
//! made by the recompression machinery (`image::run::Processor`) from one
//! fetch and one decode per source, and reach the writer the same way.
//! [`service`] is the HTTP side: `POST /zip`, and the nginx mod_zip
//! hand-off that pass-through makes.

pub mod archive;
pub mod manifest;
pub mod media;
pub mod names;
pub mod probe;
pub mod scheduler;
pub mod service;
pub mod writer;

pub use service::{conditional_headers, names_a_manifest, wants_archive, ZipService, ZipSettings};

//! Zero-copy pass-through: origin socket ▶ pipe ▶ client socket with
//! splice(2), so proxied bytes never enter user space.
//!
//! Why by hand: a proxied byte normally crosses user space twice (recv
//! copies it out of the kernel, send copies it back). Under the proxy bench
//! those two copies are ~40 % of sluice's CPU. splice moves page references
//! instead, as HAProxy does; nginx cannot. hyper owns both sockets and has no
//! such path, and no crate adds one to it, so this module does.
//!
//! How it fits under hyper, which still writes every response:
//! - The origin side (`origin::raw_http` for an HTTP origin's socket,
//!   `origin::spliced_file` for a directory origin's file) splices body
//!   bytes into this connection's [`Pipe`] and yields, for each n bytes, a
//!   *placeholder* chunk: n bytes of a static region whose only meaning is
//!   their length and address.
//! - hyper frames and queues chunks as usual. Its queue write strategy
//!   (forced with `writev(true)`) keeps each chunk as its own slice, in order.
//! - [`ClientIo`], the connection's socket, recognises placeholder slices by
//!   address and splices that many bytes from the pipe to the client instead
//!   of writing them. Everything else (heads, bytes read along with the
//!   origin's head) is written normally, so the client sees the bytes in the
//!   order hyper queued them.
//!
//! Placeholders are only made for HTTP/1 requests that carry this
//! connection's [`ConnPipe`] ([`ConnPipe::for_request`]), and [`ClientIo`]
//! fails the connection rather than send a placeholder the pipe cannot
//! back: a mistake aborts a transfer, it never sends zeros.
//!
//! Memory: the pipe holds page references, not copies, and never more than
//! hyper's write queue (one chunk plus `max_buf_size`); its size is capped
//! at `pipe::PIPE_SIZE`. Linux only.

mod client_io;
mod notify_reads;
mod pipe;

pub use client_io::{ClientIo, OnRead};
pub use notify_reads::NotifyReads;
pub use pipe::{ConnPipe, Pipe, MAX_SPLICE};

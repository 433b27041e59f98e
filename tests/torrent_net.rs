//! metalroot-torrent's allowlist and tracker-URL code (src/torrent/net.rs),
//! tested here: the helper's own `cargo test` would rebuild librqbit and its
//! 250 crates with unwinding (the release profile aborts), minutes on CI.

#[path = "../src/torrent/net.rs"]
mod net;

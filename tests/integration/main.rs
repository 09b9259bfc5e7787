//! Integration tests: one binary (it links once, which matters on a 2-core machine), one module
//! per user-facing feature. Every test drives the real `rosey` binary over real sockets.

#[path = "../common/mod.rs"]
mod common;

mod smoke;

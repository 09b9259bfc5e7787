//! Integration tests: one binary (it links once, which matters on a 2-core machine), one module
//! per user-facing feature. Every test drives the real `rosey` binary over real sockets.

// A test's helpers may unwrap: a panic there is a test failure with its location.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
/// Finding and running the end-to-end tools (chromedriver, Prometheus, promtool).
#[path = "../e2e_support/mod.rs"]
mod e2e_support;

mod actions;
mod admin;
mod answers;
mod api;
mod auth;
mod auth_hashes;
mod auth_roles;
mod auth_throttle;
mod auth_tls;
mod browser_actions;
mod browser_cards;
mod browser_charts;
mod browser_listing;
mod browser_live;
mod browser_plugin_logs;
mod browser_timeline;
mod browser_tls;
mod chat;
mod chat_panel;
mod cli;
mod cli_control;
mod cli_follow;
mod cli_reload;
mod config;
mod crash_log;
mod docs;
mod errors;
mod hostile_chat;
mod hostile_http;
mod irc;
mod live_updates;
mod memory_limit;
mod metrics;
mod notify;
mod ops;
mod page_actions;
mod pages;
mod plugin_logs;
mod plugin_protocol;
mod process_tree;
mod prometheus_e2e;
mod reload;
mod reload_rollback;
mod response_time;
mod shutdown;
mod smoke;
mod sse;
mod supervision;
mod timeline;
mod watch;

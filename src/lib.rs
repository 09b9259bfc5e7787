//! Rosey: a chat-bot host that runs each plugin as a supervised OS process, samples every
//! plugin's CPU and memory, and serves a live metrics dashboard.
//!
//! Data flows one way: [`plugins`] (processes, states, counters) → [`metrics`] (the collector
//! and its snapshots) → [`dashboard`] (HTTP: HTML, JSON, Prometheus, SSE). [`chat`] feeds
//! commands to the plugins; [`app`] starts and stops everything in order; [`config`] and
//! [`cli`] are what the operator controls, [`control`] how actions reach the running plugins; [`display`] is how times, sizes and counts read everywhere.
//! [`procfs`] is what the kernel says about a process, read by the plugins' process trees and
//! the metrics sampler alike. [`heal`] asks for the reloads nobody typed: a plugin over its
//! memory limit, or whose watched files changed.
//! [`timeline`] is the one list of what happened, recorded from
//! everywhere; [`notify`] sends chosen events to webhooks.

pub mod app;
pub mod chat;
pub mod cli;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod display;
pub mod heal;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod plugins;
pub mod procfs;
pub mod remote;
pub mod sync;
pub mod timeline;

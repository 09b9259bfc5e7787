//! Metrics: the collector that samples every plugin and publishes immutable snapshots.
//!
//! Data flows one way: plugin statuses and counters ([`crate::plugins`]) are read by the
//! [`Collector`] every `metrics.poll_interval` (and at once when a plugin changes state); it
//! samples the plugin process trees ([`sampler`]), appends to each plugin's rolling
//! [`history`], and publishes one `Arc<Snapshot>` on a `watch` channel. Readers (the dashboard)
//! share that snapshot; they never lock anything the collector holds and never sample. What a
//! snapshot says about a plugin's health (the card colours) is [`health`].

mod collector;
pub mod health;
pub mod history;
pub mod response;
pub mod sampler;
mod snapshot;

pub use collector::{Collector, MIN_CHANGE_GAP, MemoryReading};
pub use snapshot::{ChatSnapshot, Operations, PluginSnapshot, Snapshot, SystemMetrics};

//! Reloads nobody typed: the host heals a plugin on its own. Each healer watches one thing and,
//! when it is time, asks the [`ActionDoor`](crate::control::ActionDoor) for a hot reload like
//! any operator would (so it is blue-green, rolled back if the new process fails, audited, and
//! recorded in the plugin's reload log with its own trigger):
//!
//! - [`memory`]: `max_memory_mb`: a process tree that stays over its limit is recycled
//!   (trigger `memory`); one that keeps coming back over it is given up on (FAILED);
//! - [`watch`]: `watch`: a change under a watched path reloads the plugin (trigger `watch`).
//!
//! Neither acts from inside the component that noticed: the collector only sends its figures
//! down a channel, the file watcher's thread only forwards paths, and the decisions are made
//! here, on tasks of their own.

pub mod memory;
pub mod watch;

pub use memory::guard_memory;
pub use watch::watch_files;

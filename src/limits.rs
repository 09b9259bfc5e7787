//! The process's open-files limit (`RLIMIT_NOFILE`): raised at start, and the share of it the
//! dashboard's connections may use once the rest of the bot has its descriptors.
//!
//! Every dashboard connection is a descriptor. With the common soft limit of 1,024 the server
//! ran out of descriptors before `dashboard.max_sse_clients` (1,024) could refuse anyone, and
//! then could not even accept the probe that asks `/health`. Like most servers (Go's runtime
//! does it on its own), rosey raises the soft limit to the hard limit at start; what the hard
//! limit still does not allow, the dashboard gives up by serving fewer clients (it warns).

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

/// Descriptors the bot needs besides its dashboard connections and its plugins: stdio, the
/// runtime's epoll and wake-up descriptors, signal pipes, the listening socket, the sampler's
/// short-lived /proc reads (one blocking thread) and the pipes of a plugin being (re)started.
const RESERVED_FOR_THE_BOT: u64 = 64;
/// A plugin holds three pipes open for its life (stdin, stdout, stderr).
const PER_PLUGIN: u64 = 3;

/// Raise the soft open-files limit to the hard limit. Failing is not fatal: the dashboard then
/// fits its connection caps into the limit there is.
pub fn raise_open_files_limit() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!("cannot read the open-files limit (RLIMIT_NOFILE): {e}");
            return;
        }
    };
    if soft >= hard {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => debug!("open-files limit raised from {soft} to {hard}"),
        Err(e) => warn!("cannot raise the open-files limit from {soft} to {hard}: {e}"),
    }
}

/// How many descriptors the dashboard's connections may use: the soft limit minus what the bot
/// and its `plugins` need. None when the limit cannot be read (no cap is then derived from it).
pub fn descriptors_for_connections(plugins: usize) -> Option<u64> {
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    Some(soft.saturating_sub(reserved_descriptors(plugins)))
}

fn reserved_descriptors(plugins: usize) -> u64 {
    RESERVED_FOR_THE_BOT + PER_PLUGIN * plugins as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plugin_reserves_its_three_pipes() {
        assert_eq!(reserved_descriptors(0), RESERVED_FOR_THE_BOT);
        assert_eq!(reserved_descriptors(100) - reserved_descriptors(0), 300);
    }
}

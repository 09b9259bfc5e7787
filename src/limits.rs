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
/// A plugin holds seven descriptors open for its life: three pipes (stdin, stdout, stderr), the
/// pidfd tokio waits on, and its `/proc` `stat` and `children` files and task directory, which
/// the host re-reads every second (see `plugins::tree`).
const PER_PLUGIN: u64 = 7;

/// The soft open-files limit the bot was started with, when it raised it: plugins get it back
/// (see [`restore_in_child`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InheritedLimit(u64);

/// Raise the soft open-files limit to the hard limit; the limit it had, when it was raised.
/// Failing is not fatal: the dashboard then fits its connection caps into the limit there is.
pub fn raise_open_files_limit() -> Option<InheritedLimit> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!("cannot read the open-files limit (RLIMIT_NOFILE): {e}");
            return None;
        }
    };
    if soft >= hard {
        return None;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            debug!("open-files limit raised from {soft} to {hard}");
            Some(InheritedLimit(soft))
        }
        Err(e) => {
            warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            None
        }
    }
}

/// In a plugin's process, between fork and exec: put the soft limit back to what the bot was
/// given. The raise is for the bot's own connections; a plugin runs under the limit its
/// operator chose (programs that `select()` break above 1,024 descriptors), as Go's
/// `os/exec` does for its children.
pub fn restore_in_child(command: &mut tokio::process::Command, inherited: InheritedLimit) {
    let InheritedLimit(soft) = inherited;
    // SAFETY: the closure runs in the forked child before exec; it only makes the getrlimit
    // and setrlimit system calls (async-signal-safe), allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
            setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)?;
            Ok(())
        });
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
    fn each_plugin_reserves_its_pipes_pidfd_and_proc_files() {
        assert_eq!(reserved_descriptors(0), RESERVED_FOR_THE_BOT);
        assert_eq!(reserved_descriptors(100) - reserved_descriptors(0), 700);
    }
}

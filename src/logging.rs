//! Logging to stderr through `tracing`; the level comes from `ROSEY_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter, e.g. `debug` or `rosey=debug,poem=warn`.
pub const LOG_ENV: &str = "ROSEY_LOG";

/// Log to stderr at the level `ROSEY_LOG` asks for. A filter that does not parse is reported
/// (once logging works) rather than silently replaced by `info`.
pub fn init() {
    let spec = std::env::var(LOG_ENV).ok().filter(|s| !s.trim().is_empty());
    let parsed = spec.as_deref().map(EnvFilter::try_new);
    let (filter, problem) = match parsed {
        None => (EnvFilter::new("info"), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let (Some(spec), Some(e)) = (spec, problem) {
        tracing::warn!("{LOG_ENV}={spec:?} is not a valid log filter ({e}); logging at info");
    }
}

//! The `ROSEY_*` environment: which variables are config overrides (`ROSEY_<SECTION>__<KEY>`),
//! which are mistakes worth stopping for, and which are simply not config (`ROSEY_LOG`, or a
//! variable some script of the user's sets) and are left alone.

use super::report::{ConfigProblem, ValueSource, did_you_mean};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "ROSEY_";
/// The config's top-level sections; `ROSEY_<SECTION>…` is config.
const SECTIONS: [&str; 9] =
    ["dashboard", "metrics", "plugins", "chat", "timeline", "notify", "admins", "owner", "logs"];
/// Sections a single-underscore variable (`ROSEY_DASHBOARD_PORT`) was probably meant for.
const ENV_SECTIONS: [&str; 3] = ["dashboard", "metrics", "logs"];
/// `ROSEY_*` variables rosey reads itself that are not config keys.
const OWN_VARIABLES: [&str; 2] = ["config", "log"];

/// One `ROSEY_*` variable.
pub(super) struct RoseyVar {
    /// As the user spelled it.
    pub name: String,
    /// The dotted key figment reads it as: `ROSEY_DASHBOARD__PORT` is `dashboard.port`.
    pub key: String,
    pub value: String,
}

/// What a `ROSEY_*` variable is to the config.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum VarKind {
    /// An override (possibly of a mistyped key: that is reported as an unknown key).
    Config,
    /// Not config: ignored.
    Other,
    /// Plugins are a list of objects: they come from the file only.
    Plugins,
    /// `ROSEY_DASHBOARD_PORT`: one underscore where two belong.
    SingleUnderscore { section: &'static str },
}

/// Classify by the dotted key (`dashboard.port`, `dashboard_port`, `e2e_required`).
pub(super) fn classify(key: &str) -> VarKind {
    let key = key.to_ascii_lowercase();
    let first = key.split('.').next().unwrap_or_default();
    if first == "plugins" {
        return VarKind::Plugins;
    }
    // With `__` it has the shape of an override: a near miss of a section is a typo to report.
    if SECTIONS.contains(&first) || (key.contains('.') && did_you_mean(first, &SECTIONS).is_some()) {
        return VarKind::Config;
    }
    match ENV_SECTIONS.iter().find(|section| first.strip_prefix(**section).is_some_and(|rest| rest.starts_with('_'))) {
        Some(section) => VarKind::SingleUnderscore { section },
        None => VarKind::Other,
    }
}

/// The environment variable that sets a dotted key.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Every `ROSEY_*` variable.
pub(super) fn rosey_vars() -> impl Iterator<Item = RoseyVar> {
    std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        let rest = name
            .get(..ENV_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| &name[ENV_PREFIX.len()..])?;
        let key = rest.trim().replace("__", ".").to_ascii_lowercase();
        Some(RoseyVar { key, value: value.to_string_lossy().into_owned(), name })
    })
}

/// The variable that sets exactly `key`, and its text.
pub(super) fn env_var_exact(key: &str) -> Option<(String, String)> {
    rosey_vars().find(|var| var.key == key).map(|var| (var.name, var.value))
}

/// The variable, as the user spelled it, that put `key` (or a value containing it) in the config.
pub(super) fn env_var_name(key: &str) -> String {
    let mut near = None;
    for var in rosey_vars() {
        if var.key == key {
            return var.name;
        }
        if var.key.starts_with(&format!("{key}.")) || key.starts_with(&format!("{}.", var.key)) {
            near.get_or_insert(var.name);
        }
    }
    near.unwrap_or_else(|| env_var_for(key))
}

/// What the environment says besides the overrides figment reads: its mistakes, and the
/// variables that are not config (for a note in the log; rosey's own are not listed).
pub(super) fn survey() -> (Vec<ConfigProblem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut not_config = Vec::new();
    for var in rosey_vars() {
        match classify(&var.key) {
            VarKind::Config => {}
            VarKind::Other if OWN_VARIABLES.contains(&var.key.as_str()) => {}
            VarKind::Other => not_config.push(var.name),
            VarKind::Plugins => problems.push(ConfigProblem {
                key: Some("plugins".to_owned()),
                message: format!(
                    "plugins are configured in the config file only, not the environment (unset {})",
                    var.name
                ),
                source: ValueSource::Env(var.name),
            }),
            VarKind::SingleUnderscore { section } => {
                let rest = var.key[section.len() + 1..].to_ascii_uppercase();
                let meant = format!("{ENV_PREFIX}{}__{rest}", section.to_ascii_uppercase());
                problems.push(ConfigProblem {
                    key: None,
                    message: format!(
                        "not a config variable: did you mean {meant}? (two underscores between section and key)"
                    ),
                    source: ValueSource::Env(var.name),
                });
            }
        }
    }
    not_config.sort();
    (problems, not_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_section_variables_are_config() {
        assert_eq!(classify("dashboard.port"), VarKind::Config);
        assert_eq!(classify("METRICS.POLL_INTERVAL"), VarKind::Config);
        assert_eq!(classify("dashbord.port"), VarKind::Config, "a typo of a section is reported");
        assert_eq!(classify("dashboard"), VarKind::Config);
        assert_eq!(classify("plugins"), VarKind::Plugins);
        assert_eq!(classify("plugins.0.name"), VarKind::Plugins);
        assert_eq!(classify("dashboard_port"), VarKind::SingleUnderscore { section: "dashboard" });
        assert_eq!(classify("e2e_required"), VarKind::Other);
        assert_eq!(classify("e2e.required"), VarKind::Other);
        assert_eq!(classify("log"), VarKind::Other);
        assert_eq!(classify("dashboardish"), VarKind::Other);
    }
}

//! The rules that span keys, which no single field's type can check: history against the poll
//! interval, builtin against command, unique plugin names, the credentials as a whole. Applying
//! them turns a [`RawConfig`] into the [`Config`] the program runs on.

use std::collections::HashMap;

use super::numbers::compact;
use super::report::{ConfigProblem, ValueSource};
use super::schema::{BasicAuth, Config, MetricsConfig, RawAuth, RawConfig, RawPlugin};
use crate::plugins::builtin::Builtin;
use crate::plugins::command_table::HOST_NAME;
use crate::plugins::spec::{Launch, PluginConfig, PluginName, ReloadPolicy, RestartPolicy};

/// Collects problems, each with the source of its key.
struct Problems<'a> {
    source: &'a dyn Fn(&str) -> ValueSource,
    found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn add(&mut self, key: String, message: String) {
        let source = (self.source)(&key);
        self.found.push(ConfigProblem { key: Some(key), source, message });
    }
}

impl RawConfig {
    /// Check the rules that span keys; `source` says where a dotted key's value came from.
    pub fn check(&self, source: &dyn Fn(&str) -> ValueSource) -> Result<Config, Vec<ConfigProblem>> {
        let mut problems = Problems { source, found: Vec::new() };

        let auth = self.dashboard.auth.as_ref().and_then(|a| check_auth(a, &mut problems));

        let m = &self.metrics;
        if m.history_duration.written() < m.poll_interval.written() {
            problems.add(
                "metrics.history_duration".into(),
                format!(
                    "expected a number of seconds >= metrics.poll_interval ({}), found {}",
                    compact(m.poll_interval.written()),
                    compact(m.history_duration.written())
                ),
            );
        }

        let mut plugins = Vec::with_capacity(self.plugins.len());
        let mut seen = HashMap::new();
        for (index, raw) in self.plugins.iter().enumerate() {
            let plugin = check_plugin(index, raw, &mut problems);
            if raw.name.eq_ignore_ascii_case(HOST_NAME) {
                // Its replies would read like the host's own answers in chat.
                problems.add(
                    format!("plugins[{index}].name"),
                    format!("plugin name \"{}\" is reserved for the bot's own chat answers", raw.name),
                );
            } else if let Some(first) = seen.get(&raw.name) {
                problems.add(
                    format!("plugins[{index}].name"),
                    format!(
                        "duplicate plugin name \"{}\" (plugins[{first}] has it too): names must be unique",
                        raw.name
                    ),
                );
            } else {
                seen.insert(raw.name.clone(), index);
                plugins.extend(plugin);
            }
        }

        if !problems.found.is_empty() {
            return Err(problems.found);
        }
        Ok(Config {
            dashboard: self.dashboard.checked(auth),
            metrics: MetricsConfig {
                poll_interval: m.poll_interval.duration(),
                history_duration: m.history_duration.duration(),
            },
            plugins,
        })
    }
}

fn check_auth(a: &RawAuth, problems: &mut Problems) -> Option<BasicAuth> {
    let username = match a.username.as_deref() {
        Some(u) if !u.is_empty() && !u.contains(':') => u.to_owned(),
        _ => {
            let found = a.username.as_deref().map_or_else(|| "nothing".to_owned(), |u| format!("{u:?}"));
            problems.add(
                "dashboard.auth.username".into(),
                format!("expected a non-empty user name without ':', found {found}"),
            );
            return None;
        }
    };
    let password = match (&a.password, &a.password_file) {
        (Some(p), None) if !p.is_empty() => p.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(p) if !p.trim_end_matches(['\n', '\r']).is_empty() => p.trim_end_matches(['\n', '\r']).to_owned(),
            Ok(_) => {
                problems.add("dashboard.auth.password_file".into(), format!("the file {} is empty", path.display()));
                return None;
            }
            Err(e) => {
                problems.add("dashboard.auth.password_file".into(), format!("cannot read {}: {e}", path.display()));
                return None;
            }
        },
        (Some(_), Some(_)) => {
            problems.add("dashboard.auth.password".into(), "set either password or password_file, not both".into());
            return None;
        }
        _ => {
            problems.add("dashboard.auth.password".into(), "expected a non-empty password (or password_file)".into());
            return None;
        }
    };
    Some(BasicAuth { username, password })
}

fn check_plugin(index: usize, raw: &RawPlugin, problems: &mut Problems) -> Option<PluginConfig> {
    let at = |key: &str| format!("plugins[{index}].{key}");
    let name = PluginName::new(raw.name.as_str()).map_err(|invalid| problems.add(at("name"), invalid.to_string()));
    let launch = match (&raw.builtin, &raw.command) {
        (Some(_), Some(_)) => Err(format!("plugin \"{}\": set either builtin or command, not both", raw.name)),
        (None, None) => Err(format!("plugin \"{}\": expected a builtin name or a command list", raw.name)),
        (Some(b), None) => Builtin::from_name(b).map(Launch::Builtin).ok_or_else(|| {
            let known: Vec<_> = Builtin::ALL.iter().map(|b| b.name()).collect();
            format!("plugin \"{}\": unknown builtin \"{b}\" (expected one of: {})", raw.name, known.join(", "))
        }),
        (None, Some(command)) => match command.split_first() {
            Some((program, args)) if !program.is_empty() => {
                Ok(Launch::Command { program: program.clone(), args: args.to_vec() })
            }
            _ => Err(format!("plugin \"{}\": expected a non-empty list: program, then its arguments", raw.name)),
        },
    };
    let launch = launch.map_err(|message| {
        let key = if raw.builtin.is_some() { "builtin" } else { "command" };
        problems.add(at(key), message);
    });
    Some(PluginConfig {
        name: name.ok()?,
        launch: launch.ok()?,
        env: raw.env.clone(),
        cwd: raw.cwd.clone(),
        version: raw.version.clone(),
        commands: raw.commands.clone(),
        restart: RestartPolicy::from(&raw.restart),
        reload: ReloadPolicy {
            ready_timeout: raw.reload_timeout.duration(),
            drain_timeout: raw.drain_timeout.duration(),
        },
        command_timeout: raw.command_timeout.duration(),
    })
}

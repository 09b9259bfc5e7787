//! The rules that span keys, which no single field's type can check: history against the poll
//! interval, builtin against command, unique plugin names, the credentials as a whole. Applying
//! them turns a [`RawConfig`] into the [`Config`] the program runs on.

use std::collections::HashMap;

use super::irc::{FloodLimit, IrcSettings, Sasl};
use super::login::{Login, Password};
use super::numbers::compact;
use super::report::{ConfigProblem, ValueSource};
use super::schema::{
    ChatConfig, Config, MetricsConfig, RawAuth, RawConfig, RawIrc, RawPlugin, RawProbe, RawUser, User,
};
use super::secret;
use crate::plugins::builtin::Builtin;
use crate::plugins::command_table::HOST_NAME;
use crate::plugins::spec::{
    Launch, MemoryLimit, PluginConfig, PluginName, Probe, ReloadPolicy, RestartPolicy, WatchPattern,
};

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
        let users = check_users(&self.dashboard.users, auth.as_ref().map(|a| a.username.as_str()), &mut problems);

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

        let chat = check_chat(self, &mut problems);
        let mut notify_problems = Vec::new();
        let notify = self.notify.checked(&mut notify_problems);
        for (key, message) in notify_problems {
            problems.add(key, message);
        }

        if !problems.found.is_empty() {
            return Err(problems.found);
        }
        Ok(Config {
            dashboard: self.dashboard.checked(auth, users),
            metrics: MetricsConfig {
                poll_interval: m.poll_interval.duration(),
                history_duration: m.history_duration.duration(),
            },
            plugins,
            chat,
            timeline: self.timeline.checked(),
            notify,
            logs: (&self.logs).into(),
            prometheus_enabled: m.prometheus_enabled,
        })
    }
}

fn check_auth(a: &RawAuth, problems: &mut Problems) -> Option<Login> {
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
    let given = [a.password.is_some(), a.password_file.is_some(), a.password_hash.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        problems.add(
            "dashboard.auth.password".into(),
            "set one of password, password_file and password_hash, not several".into(),
        );
        return None;
    }
    let secret = match (&a.password, &a.password_file, &a.password_hash) {
        (Some(p), _, _) if !p.is_empty() => Password::Plain(p.clone()),
        (_, Some(path), _) => match std::fs::read_to_string(path) {
            Ok(p) if !p.trim_end_matches(['\n', '\r']).is_empty() => {
                Password::Plain(p.trim_end_matches(['\n', '\r']).to_owned())
            }
            Ok(_) => {
                problems.add("dashboard.auth.password_file".into(), format!("the file {} is empty", path.display()));
                return None;
            }
            Err(e) => {
                problems.add("dashboard.auth.password_file".into(), format!("cannot read {}: {e}", path.display()));
                return None;
            }
        },
        (_, _, Some(hash)) => match Password::from_hash(hash) {
            Ok(secret) => secret,
            Err(message) => {
                problems.add("dashboard.auth.password_hash".into(), message);
                return None;
            }
        },
        _ => {
            problems.add(
                "dashboard.auth.password".into(),
                "expected a non-empty password (or password_file, or password_hash)".into(),
            );
            return None;
        }
    };
    Some(Login { username, secret })
}

fn check_users(raw: &[RawUser], auth_user: Option<&str>, problems: &mut Problems) -> Vec<User> {
    let mut users: Vec<User> = Vec::with_capacity(raw.len());
    for (index, user) in raw.iter().enumerate() {
        let at = |key: &str| format!("dashboard.users[{index}].{key}");
        let name = &user.username;
        if name.is_empty() || name.contains(':') {
            problems.add(at("username"), format!("expected a non-empty user name without ':', found {name:?}"));
            continue;
        }
        if auth_user == Some(name.as_str()) || users.iter().any(|u| u.login.username == *name) {
            problems.add(at("username"), format!("the user name {name:?} is given twice: user names must be unique"));
            continue;
        }
        let secret = match (&user.password, &user.password_hash) {
            (Some(p), None) if !p.is_empty() => Password::Plain(p.clone()),
            (None, Some(hash)) => match Password::from_hash(hash) {
                Ok(secret) => secret,
                Err(message) => {
                    problems.add(at("password_hash"), message);
                    continue;
                }
            },
            (Some(_), Some(_)) => {
                problems.add(at("password"), "set either password or password_hash, not both".into());
                continue;
            }
            _ => {
                problems.add(at("password"), "expected a non-empty password (or password_hash)".into());
                continue;
            }
        };
        users.push(User { login: Login { username: name.clone(), secret }, role: user.role });
    }
    users
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
            rollback_window: raw.rollback_window.duration(),
            probe: raw.probe.as_ref().and_then(|probe| check_probe(probe, &at("probe.command"), problems)),
        },
        command_timeout: raw.command_timeout.duration(),
        memory_limit: raw.max_memory_mb.map(|max_mb| MemoryLimit {
            max_mb: max_mb.get(),
            samples: raw.max_memory_samples.get(),
            recycles: raw.max_memory_recycles.get(),
            window: raw.max_memory_window.duration(),
        }),
        watch: raw.watch.iter().cloned().map(WatchPattern).collect(),
    })
}

/// A reload's probe: a command name (its `!` optional), as chat would route it.
fn check_probe(raw: &RawProbe, key: &str, problems: &mut Problems) -> Option<Probe> {
    let command = raw.command.strip_prefix('!').unwrap_or(&raw.command);
    if command.is_empty() || command.contains(char::is_whitespace) {
        let found = &raw.command;
        problems.add(
            key.to_owned(),
            format!("expected a command name such as \"roll\" (its arguments go in args), found {found:?}"),
        );
        return None;
    }
    Some(Probe {
        command: command.to_owned(),
        args: raw.args.clone(),
        expect: raw.expect.clone(),
        timeout: raw.timeout.duration(),
    })
}

/// The `chat` section: each connection checked on its own (a bad one names its key and its
/// connection), names unique, and the admins of every network.
fn check_chat(raw: &RawConfig, problems: &mut Problems) -> ChatConfig {
    let mut irc = Vec::with_capacity(raw.chat.irc.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in raw.chat.irc.iter().enumerate() {
        if let Some(first) = seen.get(entry.name.as_str()) {
            problems.add(
                format!("chat.irc[{index}].name"),
                format!(
                    "duplicate connection name {:?} (chat.irc[{first}] has it too): names must be unique",
                    entry.name
                ),
            );
            continue;
        }
        seen.insert(&entry.name, index);
        irc.extend(check_irc(index, entry, problems));
    }
    let mut admins = raw.admins.clone();
    admins.extend(raw.owner.clone());
    for (index, admin) in raw.admins.iter().enumerate() {
        if admin.trim().is_empty() {
            problems.add(format!("admins[{index}]"), "expected an account name, found an empty string".into());
        }
    }
    ChatConfig { console: raw.chat.console, irc, admins }
}

/// A nick, channel, user or account as IRC carries it: one word, no control characters.
fn is_irc_word(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(':')
        && !text.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',')
}

fn check_irc(index: usize, raw: &RawIrc, problems: &mut Problems) -> Option<IrcSettings> {
    let at = |key: &str| format!("chat.irc[{index}].{key}");
    let name = &raw.name;
    let before = problems.found.len();
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        problems.add(
            at("name"),
            format!("invalid connection name {name:?}: expected 1..32 characters of a-z A-Z 0-9 . _ -"),
        );
    }
    let mut bad = |key: &str, message: String| problems.add(at(key), format!("connection {name:?}: {message}"));
    if raw.server.trim().is_empty() || raw.server.contains(char::is_whitespace) {
        bad("server", format!("expected a host name or IP address, found {:?}", raw.server));
    }
    if !is_irc_word(&raw.nick) {
        bad("nick", format!("expected a nick (one word), found {:?}", raw.nick));
    }
    for (i, nick) in raw.alt_nicks.iter().enumerate() {
        if !is_irc_word(nick) {
            bad(&format!("alt_nicks[{i}]"), format!("expected a nick (one word), found {nick:?}"));
        }
    }
    for (key, value) in [("user", &raw.user)] {
        if let Some(value) = value.as_deref().filter(|v| !is_irc_word(v)) {
            bad(key, format!("expected one word, found {value:?}"));
        }
    }
    if raw.realname.as_deref().is_some_and(|r| r.contains(['\r', '\n', '\0'])) {
        bad("realname", "expected one line of text".into());
    }
    for (i, channel) in raw.channels.iter().enumerate() {
        if !is_irc_word(channel) || !channel.starts_with(['#', '&', '+', '!']) {
            bad(&format!("channels[{i}]"), format!("expected a channel such as \"#rosey\", found {channel:?}"));
        }
    }
    for (i, admin) in raw.admins.iter().enumerate() {
        if !is_irc_word(admin) {
            bad(&format!("admins[{i}]"), format!("expected an account name, found {admin:?}"));
        }
    }
    if let Some(ca) = &raw.tls_ca {
        if !raw.tls {
            bad("tls_ca", "a CA file needs tls: true".into());
        } else if !ca.is_file() {
            bad("tls_ca", format!("{} is not a readable file", ca.display()));
        }
    }
    let password = secret::resolve(raw.password.as_deref(), raw.password_env.as_deref(), raw.password_file.as_deref())
        .map_err(|(suffix, message)| bad(&format!("password{suffix}"), message))
        .ok()
        .flatten();
    let sasl = raw.sasl.as_ref().and_then(|sasl| {
        if !is_irc_word(&sasl.account) {
            bad("sasl.account", format!("expected an account name, found {:?}", sasl.account));
        }
        let secret =
            secret::resolve(sasl.password.as_deref(), sasl.password_env.as_deref(), sasl.password_file.as_deref());
        match secret {
            Ok(Some(password)) => Some(Sasl { account: sasl.account.clone(), password }),
            Ok(None) => {
                bad("sasl.password", "expected a password (or password_env, or password_file)".into());
                None
            }
            Err((suffix, message)) => {
                bad(&format!("sasl.password{suffix}"), message);
                None
            }
        }
    });
    if raw.reconnect_max_delay.written() < raw.reconnect_delay.written() {
        bad("reconnect_max_delay", "expected a number of seconds >= reconnect_delay".into());
    }
    if problems.found.len() > before {
        return None;
    }
    let preset = if raw.twitch { FloodLimit::TWITCH } else { FloodLimit::DEFAULT };
    let flood = FloodLimit {
        burst: raw.flood_burst.map_or(preset.burst, |b| b.get()),
        interval: raw.flood_interval.map_or(preset.interval, |i| i.duration()),
    };
    let user = raw.user.clone().unwrap_or_else(|| raw.nick.clone());
    Some(IrcSettings {
        name: name.clone(),
        server: raw.server.clone(),
        port: raw.port.map_or(if raw.tls { 6697 } else { 6667 }, |p| p.get()),
        tls: raw.tls,
        tls_ca: raw.tls_ca.clone(),
        nick: raw.nick.clone(),
        alt_nicks: raw.alt_nicks.clone(),
        realname: raw.realname.clone().unwrap_or_else(|| "Rosey chat bot".to_owned()),
        user,
        password,
        sasl,
        channels: raw.channels.clone(),
        admins: raw.admins.clone(),
        twitch: raw.twitch,
        max_reply_lines: raw.max_reply_lines.get(),
        flood,
        queue: raw.queue.get(),
        idle_ping: raw.idle_ping.duration(),
        ping_timeout: raw.ping_timeout.duration(),
        reconnect_delay: raw.reconnect_delay.duration(),
        reconnect_max_delay: raw.reconnect_max_delay.duration(),
    })
}

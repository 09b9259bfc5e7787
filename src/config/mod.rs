//! Configuration: the layered `rosey.json` + `ROSEY_*` environment, checked as it is loaded.
//!
//! Layers, lowest first: built-in defaults, the config file, environment variables
//! (`ROSEY_<SECTION>__<KEY>`). What the user wrote is deserialised into [`RawConfig`], whose
//! field types check every single-key rule (every unknown key is an error too); then
//! [`RawConfig::check`] applies the rules that span keys and builds the typed [`Config`] the
//! program runs on. Every problem is collected, with the key, the source it came from and what
//! was expected. The plugins' own types ([`crate::plugins::spec`]) are built here; the plugins
//! module never reads the config.
//!
//! - [`schema`]: the raw and checked shapes; [`numbers`]: seconds with ranges, thresholds.
//! - [`load`]: finding the file and layering it with the environment ([`env`]).
//! - [`check`]: the rules that span keys; [`report`]: problems in words.

mod check;
mod env;
mod events;
mod ip_range;
mod irc;
mod load;
mod login;
mod numbers;
mod report;
mod schema;
mod secret;

pub use events::{NotifyConfig, RawNotify, RawTimeline, RawWebhook, TimelineConfig, Webhook, WebhookFormat};
pub use ip_range::IpRange;
pub use irc::{FloodLimit, IrcSettings, Sasl, TEXT_BYTES};
pub use load::{ConfigFile, DEFAULT_CONFIG_FILE, Loaded, load, load_dashboard};
pub use login::{Login, Password, hash_password};
pub use report::{ConfigError, ConfigProblem, NamedBy, ValueSource};
pub use schema::{BasicAuth, ChatConfig, Config, DashboardConfig, MetricsConfig, RawConfig, Role, TlsFiles, User};
pub use secret::Secret;

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Json, Serialized};

    use super::*;

    /// Load defaults plus `json` (standing in for the file; no environment layer).
    fn load_json(json: &str) -> Result<(RawConfig, Config), ConfigError> {
        let figment = Figment::from(Serialized::defaults(RawConfig::default())).merge(Json::string(json));
        load::load_figment(&figment, None, Vec::new())
    }

    /// `key: message` of every problem `json` has.
    fn problems(json: &str) -> Vec<String> {
        match load_json(json) {
            Err(ConfigError::Invalid { problems }) => {
                problems.into_iter().map(|p| format!("{}: {}", p.key.unwrap_or_default(), p.message)).collect()
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("{json} was accepted"),
        }
    }

    #[test]
    fn every_bad_key_is_reported_in_key_order_with_the_value_quoted() {
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": "x"}, "dashboard": {"port": "abc", "host": 5, "prot": 1}}"#),
            [
                "dashboard.host: expected a host name or IP address, found 5",
                "dashboard.port: expected an integer 1..65535, found \"abc\"",
                "dashboard.prot: unknown key \"prot\", did you mean \"port\"? (expected one of: enabled, host, \
                 port, warn_cpu_percent, warn_memory_mb, warn_response_ms, max_sse_clients, auth, users, trusted_proxies, tls)",
                "metrics.poll_interval: expected a number of seconds > 0, found \"x\"",
            ]
        );
    }

    #[test]
    fn a_key_that_took_its_default_does_not_cause_follow_up_problems() {
        // poll_interval falls back to 5 after its type error; history_duration 2 < 5 is not news.
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": "x", "history_duration": 2}}"#),
            ["metrics.poll_interval: expected a number of seconds > 0, found \"x\""]
        );
        // A plugin whose builtin has the wrong type is not also "missing a builtin or command".
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": 5}]}"#),
            ["plugins[0].builtin: expected a string, found 5"]
        );
    }

    #[test]
    fn check_problems_come_with_type_problems() {
        assert_eq!(
            problems(
                r#"{"dashboard": {"port": 0, "enabled": "yes"}, "plugins": [{"name": "bad name!", "builtin": "x"}]}"#
            ),
            [
                "dashboard.enabled: expected true or false, found \"yes\"",
                "dashboard.port: expected an integer 1..65535, found 0",
                "plugins[0].builtin: plugin \"bad name!\": unknown builtin \"x\" (expected one of: dice-roller, 8ball)",
                "plugins[0].name: invalid plugin name \"bad name!\": expected 1..64 characters of a-z A-Z 0-9 . _ - (not . or ..)",
            ]
        );
    }

    #[test]
    fn a_mistyped_password_is_not_echoed() {
        assert_eq!(
            problems(r#"{"dashboard": {"auth": {"username": "admin", "password": 12345}}}"#),
            ["dashboard.auth.password: expected a string, found a value of another type"]
        );
    }

    #[test]
    fn plugin_problems_name_the_plugin_and_its_index() {
        assert_eq!(
            problems(r#"{"plugins": [{"name": "d", "builtin": "8ball"}, {"name": "d", "builtin": "dice-roller"}]}"#),
            ["plugins[1].name: duplicate plugin name \"d\" (plugins[0] has it too): names must be unique"]
        );
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "restart": {"max_attempts": -1}}]}"#),
            ["plugins[0].restart.max_attempts: expected an integer >= 0, found -1"]
        );
        assert_eq!(
            problems(r#"{"plugins": ["dice-roller"]}"#),
            [
                "plugins[0]: expected a plugin object such as {\"name\": \"dice\", \"builtin\": \"dice-roller\"}, found \"dice-roller\""
            ]
        );
    }

    #[test]
    fn broken_json_names_the_line() {
        let problems = problems("{\n  \"dashboard\": {\n    \"port\": 8080,\n  }\n}\n");
        assert_eq!(problems, [": invalid JSON: trailing comma at line 4 column 3"]);
    }

    #[test]
    fn history_must_cover_one_poll() {
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": 10, "history_duration": 5}}"#),
            ["metrics.history_duration: expected a number of seconds >= metrics.poll_interval (10), found 5"]
        );
        let (_, config) = load_json(r#"{"metrics": {"poll_interval": 10, "history_duration": 10}}"#).expect("valid");
        assert_eq!(config.metrics.history_capacity(), 1);
    }

    #[test]
    fn rosey_config_prints_whole_numbers_as_integers_and_no_password() {
        let (raw, config) = load_json(
            r#"{"metrics": {"poll_interval": 0.5, "history_duration": 60},
                "dashboard": {"auth": {"username": "admin", "password": "s3cret"}}}"#,
        )
        .expect("valid");
        let printed = serde_json::to_value(raw.redacted()).expect("serialisable");
        assert_eq!(
            printed["metrics"],
            serde_json::json!({"poll_interval": 0.5, "history_duration": 60, "prometheus_enabled": true})
        );
        assert_eq!(printed["dashboard"]["auth"]["password"], "<redacted>");
        assert_eq!(config.dashboard.auth.expect("auth").secret, Password::Plain("s3cret".into()));
    }

    #[test]
    fn a_reload_can_tell_a_changed_plugin_from_an_unchanged_one() {
        let plugins = |json: &str| load_json(json).expect("valid").1.plugins;
        let before = plugins(r#"{"plugins": [{"name": "a", "builtin": "8ball"}, {"name": "b", "command": ["x"]}]}"#);
        let after = plugins(
            r#"{"plugins": [{"name": "a", "builtin": "8ball"}, {"name": "b", "command": ["x"], "restart": {"max_delay": 5}}]}"#,
        );
        assert_eq!(before[0], after[0]);
        assert_ne!(before[1], after[1]);
    }

    #[test]
    fn reload_timeouts_have_defaults_and_a_range() {
        let (_, config) =
            load_json(r#"{"plugins": [{"name": "a", "builtin": "8ball", "drain_timeout": 2.5}]}"#).expect("valid");
        let reload = &config.plugins[0].reload;
        assert_eq!((reload.ready_timeout.as_secs_f64(), reload.drain_timeout.as_secs_f64()), (10.0, 2.5));
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "reload_timeout": 0}]}"#),
            ["plugins[0].reload_timeout: expected a number of seconds > 0, found 0"]
        );
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "drain_timeout": 7200}]}"#),
            ["plugins[0].drain_timeout: expected a number of seconds from 0.1 to 3600 (1 hour), found 7200"]
        );
    }

    #[test]
    fn rollback_window_and_probe_are_read_and_checked() {
        let (_, config) = load_json(r#"{"plugins": [{"name": "a", "builtin": "8ball"}]}"#).expect("valid");
        assert_eq!(config.plugins[0].reload.rollback_window.as_secs_f64(), 10.0);
        assert_eq!(config.plugins[0].reload.probe, None, "no probe unless asked");
        let json = r#"{"plugins": [{"name": "a", "builtin": "dice-roller", "rollback_window": 0,
            "probe": {"command": "!roll", "args": "1d1", "expect": "= 1"}}]}"#;
        let (_, config) = load_json(json).expect("valid");
        let reload = &config.plugins[0].reload;
        assert_eq!(reload.rollback_window, std::time::Duration::ZERO);
        let probe = reload.probe.as_ref().expect("a probe");
        assert_eq!((probe.to_string().as_str(), probe.expect.as_str()), ("!roll 1d1", "= 1"));
        assert_eq!(probe.timeout.as_secs_f64(), 5.0);
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "probe": {"command": "roll 1d1"}}]}"#),
            [
                r#"plugins[0].probe.command: expected a command name such as "roll" (its arguments go in args), found "roll 1d1""#
            ]
        );
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "probe": {"args": "1d1"}}]}"#),
            [
                r#"plugins[0].probe.command: expected a command name such as "roll" (its arguments go in args), found """#
            ]
        );
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "rollback_window": -1}]}"#),
            ["plugins[0].rollback_window: expected a number of seconds >= 0, found -1"]
        );
    }

    #[test]
    fn the_prd_appendix_a_file_is_accepted_as_written() {
        let (_, config) = load_json(
            r#"{"dashboard": {"enabled": true, "port": 8080, "host": "0.0.0.0"},
                "metrics": {"poll_interval": 5, "history_duration": 3600, "prometheus_enabled": true},
                "admins": ["bot_owner", "operator1", "operator2"]}"#,
        )
        .expect("valid");
        assert_eq!(config.chat.admins, ["bot_owner", "operator1", "operator2"]);
        assert!(config.prometheus_enabled && config.chat.console && config.chat.irc.is_empty());
    }

    #[test]
    fn an_irc_connection_takes_its_defaults_and_presets() {
        let (raw, config) = load_json(
            r##"{"owner": "root", "admins": ["op"], "chat": {"console": false, "irc": [
                {"name": "libera", "server": "irc.libera.chat", "nick": "rosey", "channels": ["#rosey"],
                 "sasl": {"account": "rosey", "password": "pw1"}, "admins": ["alice"]},
                {"name": "twitch", "server": "irc.chat.twitch.tv", "nick": "roseybot", "twitch": true,
                 "password": "oauth:tok", "channels": ["#dallas"]}]}}"##,
        )
        .expect("valid");
        let chat = &config.chat;
        assert!(!chat.console);
        assert_eq!(chat.admins, ["op", "root"]);
        let libera = &chat.irc[0];
        assert_eq!((libera.port, libera.tls, libera.user.as_str()), (6697, true, "rosey"));
        assert_eq!(libera.sasl.as_ref().map(|s| s.password.expose()), Some("pw1"));
        assert_eq!(libera.flood.burst, 4);
        assert_eq!(chat.irc[1].flood.burst, 5, "the Twitch preset");
        assert!(!format!("{config:?}").contains("pw1") && !format!("{config:?}").contains("oauth:tok"));
        let printed = serde_json::to_string(&raw.redacted()).expect("serialisable");
        assert!(!printed.contains("pw1") && !printed.contains("oauth:tok"), "{printed}");
    }

    #[test]
    fn irc_problems_name_the_key_and_the_connection() {
        assert_eq!(
            problems(
                r##"{"chat": {"irc": [{"name": "net", "server": "irc.example", "nick": "two words",
                    "channels": ["rosey"], "sasl": {"account": "a"}, "prot": 1}]}}"##
            ),
            [
                "chat.irc[0].channels[0]: connection \"net\": expected a channel such as \"#rosey\", found \"rosey\"",
                "chat.irc[0].nick: connection \"net\": expected a nick (one word), found \"two words\"",
                "chat.irc[0].prot: unknown key \"prot\", did you mean \"port\"? (expected one of: name, server, port, \
                 tls, tls_ca, nick, alt_nicks, user, realname, password, password_env, password_file, sasl, channels, \
                 admins, twitch, max_reply_lines, flood_burst, flood_interval, queue, idle_ping, ping_timeout, \
                 reconnect_delay, reconnect_max_delay)",
                "chat.irc[0].sasl.password: connection \"net\": expected a password (or password_env, or password_file)",
            ]
        );
        assert_eq!(
            problems(r##"{"chat": {"irc": [{"name": "n", "server": "s", "nick": "r", "password": 5}]}}"##),
            ["chat.irc[0].password: expected a string, found a value of another type"]
        );
    }
}

//! Loading: find the file, layer defaults < file < `ROSEY_*` environment with figment,
//! deserialise collecting every bad key, resolve the file's relative plugin paths, then check.
//!
//! [`load`] reads only the file and the environment and changes nothing outside itself, so it
//! can run again at any time (a reload re-reads the same way).

use std::path::{Component, Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Json, Serialized};
use figment::value::Value;
use serde::Deserialize;
use tracing::{info, warn};

use super::env::{self, ENV_PREFIX, VarKind};
use super::report::{
    ConfigError, ConfigProblem, NamedBy, ValueSource, display_key, follows_from, key_message, sort_by_key, split_key,
    unreadable_message,
};
use super::schema::{Config, DashboardConfig, RawConfig};

/// The config file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "rosey.json";

/// At most this many problems are reported in one run (each pass below finds one bad key).
const MAX_PROBLEMS: usize = 64;

/// String keys an environment variable may set. figment parses every variable's text (so
/// `0123` would become the number 123 and `true` a bool); these keys take the text as written.
const ENV_STRING_KEYS: [&str; 5] = [
    "dashboard.host",
    "dashboard.auth.username",
    "dashboard.auth.password",
    "dashboard.auth.password_file",
    "dashboard.auth.password_hash",
];

/// Where the config file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// `rosey.json` in the working directory; its absence means "defaults".
    Default,
    /// Named on the command line or in the environment; its absence is an error.
    Named { path: PathBuf, named_by: NamedBy },
}

impl ConfigFile {
    /// The path this choice refers to, as the user wrote it.
    pub fn path(&self) -> &Path {
        match self {
            ConfigFile::Default => Path::new(DEFAULT_CONFIG_FILE),
            ConfigFile::Named { path, .. } => path,
        }
    }
}

/// The merged, checked configuration and what it was made from.
pub struct Loaded {
    pub config: Config,
    /// The merged configuration before checking, relative plugin paths resolved (`rosey config`).
    pub raw: RawConfig,
    /// The file read, as an absolute path; None when there was no default file.
    pub file: Option<PathBuf>,
    /// `ROSEY_*` variables that are not config and were ignored.
    pub not_config_env: Vec<String>,
}

impl Loaded {
    /// Say at start which file is in use, and what was ignored.
    pub fn log_summary(&self) {
        match &self.file {
            Some(file) => info!(file = %file.display(), plugins = self.config.plugins.len(), "config file in use"),
            // Plugins come from the file only, so there are none.
            None => warn!("no config file ({DEFAULT_CONFIG_FILE} in the working directory); running with no plugins"),
        }
        if !self.not_config_env.is_empty() {
            warn!(
                "ignoring {}: not config variables (those are {ENV_PREFIX}<SECTION>__<KEY>)",
                self.not_config_env.join(", ")
            );
        }
    }
}

/// Merge defaults, the config file and the `ROSEY_*` environment; check the result.
pub fn load(file: &ConfigFile) -> Result<Loaded, ConfigError> {
    let Layers { figment, absolute, env_problems, not_config_env } = layers(file)?;
    let base = absolute.as_deref().and_then(Path::parent);
    let (raw, config) = load_figment(&figment, base, env_problems)?;
    Ok(Loaded { config, raw, file: absolute, not_config_env })
}

/// The `dashboard` section alone, from the same layers as [`load`]: what a client of the
/// running bot needs (`rosey reload`), even while another section of the file is broken (the
/// bot then reports those problems itself).
pub fn load_dashboard(file: &ConfigFile) -> Result<DashboardConfig, ConfigError> {
    let Layers { figment, absolute, .. } = layers(file)?;
    let base = absolute.as_deref().and_then(Path::parent);
    let alone = figment.find_value("dashboard").ok().map(|section| {
        Figment::from(Serialized::defaults(RawConfig::default())).merge(Serialized::default("dashboard", section))
    });
    match alone.map(|alone| load_figment(&alone, base, Vec::new())) {
        Some(Ok((_, config))) => Ok(config.dashboard),
        // The whole load names each problem with the file or variable it came from.
        _ => load(file).map(|loaded| loaded.config.dashboard),
    }
}

/// The layers of a config, merged but not yet read.
struct Layers {
    figment: Figment,
    /// The file read, as an absolute path; None when there was no default file.
    absolute: Option<PathBuf>,
    env_problems: Vec<ConfigProblem>,
    not_config_env: Vec<String>,
}

fn layers(file: &ConfigFile) -> Result<Layers, ConfigError> {
    let path = file.path();
    let found = path.is_file();
    if !found && let ConfigFile::Named { path, named_by } = file {
        let problem = if path.exists() { "is not a file" } else { "does not exist" };
        return Err(ConfigError::MissingFile { path: path.clone(), named_by: *named_by, problem });
    }
    // figment would call an unreadable file "invalid JSON"; say what is wrong instead.
    if found && let Err(e) = std::fs::File::open(path) {
        let problem = ConfigProblem {
            key: None,
            source: ValueSource::File(path.to_owned()),
            message: format!("cannot read: {e}"),
        };
        return Err(ConfigError::Invalid { problems: vec![problem] });
    }
    let (env_problems, not_config_env) = env::survey();
    let absolute = found.then(|| std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
    Ok(Layers { figment: build_figment(found.then_some(path)), absolute, env_problems, not_config_env })
}

fn build_figment(file: Option<&Path>) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(path) = file {
        // `file_exact`: figment's `file` would silently search parent directories.
        figment = figment.merge(Json::file_exact(path));
    }
    let env = Env::prefixed(ENV_PREFIX).split("__").filter(|key| env::classify(key.as_str()) == VarKind::Config);
    figment.merge(env)
}

/// Extract and check a figment, reporting every problem (and `earlier` ones), each with its key
/// and source. Relative plugin paths are resolved against `base`, the config file's directory.
pub(super) fn load_figment(
    figment: &Figment,
    base: Option<&Path>,
    earlier: Vec<ConfigProblem>,
) -> Result<(RawConfig, Config), ConfigError> {
    let mut problems = earlier;
    // A broken file fails here, before any key is read.
    let mut merged = match figment.find_value("") {
        Ok(merged) => merged,
        Err(error) => {
            problems.splice(0..0, error.into_iter().map(|e| unreadable(&e)));
            return Err(ConfigError::Invalid { problems });
        }
    };
    let sources = Sources { figment, merged: merged.clone() };
    for key in ENV_STRING_KEYS {
        if !matches!(sources.of(key), ValueSource::Env(_)) {
            continue;
        }
        if let (Some((_, text)), Some(slot)) = (env::env_var_exact(key), find_mut(&mut merged, &split_key(key))) {
            *slot = Value::String(slot.tag(), text);
        }
    }
    let (raw, key_problems) = extract_all(&mut merged, &sources);
    problems.extend(key_problems);
    if let Some(mut raw) = raw {
        if let Some(base) = base {
            resolve_paths(&mut raw, base);
        }
        match raw.check(&|key| sources.of(key)) {
            Ok(config) if problems.is_empty() => return Ok((raw, config)),
            Ok(_) => {}
            Err(found) => {
                // A key already reported took its default; what check() says about it is noise.
                let reported: Vec<String> = problems.iter().filter_map(|p| p.key.clone()).collect();
                problems.extend(
                    found.into_iter().filter(|p| !p.key.as_deref().is_some_and(|k| follows_from(k, &reported))),
                );
            }
        }
    }
    sort_by_key(&mut problems);
    Err(ConfigError::Invalid { problems })
}

/// Relative plugin paths in a file mean "beside the file", as in compose files and unit files:
/// the working directory, and a program that names a path (`./plugin.py`, `bin/plugin`). A
/// bare program name (`python3`) is still looked up in `PATH`, like a shell does; arguments
/// are the program's business and are left alone.
fn resolve_paths(raw: &mut RawConfig, base: &Path) {
    if let Some(dir) = raw.logs.dir.as_mut()
        && dir.is_relative()
    {
        *dir = beside(base, dir);
    }
    for plugin in &mut raw.plugins {
        if let Some(program) = plugin.command.as_mut().and_then(|command| command.first_mut())
            && program.contains('/')
            && Path::new(program.as_str()).is_relative()
        {
            *program = beside(base, Path::new(program.as_str())).to_string_lossy().into_owned();
        }
        if let Some(cwd) = plugin.cwd.as_mut()
            && cwd.is_relative()
        {
            *cwd = beside(base, cwd);
        }
        for watched in plugin.watch.iter_mut().filter(|w| w.is_relative()) {
            *watched = beside(base, watched);
        }
    }
}

/// `relative` joined to `base`, without the `./` parts that would only clutter `rosey config`.
fn beside(base: &Path, relative: &Path) -> PathBuf {
    let mut joined = base.to_owned();
    joined.extend(relative.components().filter(|c| *c != Component::CurDir));
    joined
}

/// Answers "where did this key's value come from?" for error messages.
struct Sources<'a> {
    figment: &'a Figment,
    /// The merged value as figment built it; every value carries the tag of its provider.
    merged: Value,
}

impl Sources<'_> {
    /// The source of `key` (`plugins[0].name` style), or of its nearest ancestor present when
    /// the key itself took a default (a plugin's missing `name` comes from that plugin's file).
    fn of(&self, key: &str) -> ValueSource {
        let segments = split_key(key);
        let mut value = &self.merged;
        for segment in &segments {
            match child(value, segment) {
                Some(next) => value = next,
                None => break,
            }
        }
        let Some(metadata) = self.figment.get_metadata(value.tag()) else { return ValueSource::Default };
        match &metadata.source {
            Some(figment::Source::File(path)) => ValueSource::File(path.clone()),
            _ if metadata.name.contains("environment") => ValueSource::Env(env::env_var_name(&segments.join("."))),
            _ => ValueSource::Default,
        }
    }
}

fn child<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    match value {
        Value::Dict(_, dict) => dict.get(segment),
        Value::Array(_, list) => list.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

fn find_mut<'v>(value: &'v mut Value, segments: &[String]) -> Option<&'v mut Value> {
    let Some((first, rest)) = segments.split_first() else { return Some(value) };
    let next = match value {
        Value::Dict(_, dict) => dict.get_mut(first)?,
        Value::Array(_, list) => list.get_mut(first.parse::<usize>().ok()?)?,
        _ => return None,
    };
    find_mut(next, rest)
}

/// Remove the key at `path` so that it takes its default; false if it cannot be removed.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    match find_mut(value, parents) {
        Some(Value::Dict(_, dict)) => dict.remove(last).is_some(),
        // A bad list element cannot go without renumbering the ones after it.
        _ => false,
    }
}

/// Deserialise the merged value, collecting every bad key: after each error the bad key is
/// dropped (so it takes its valid default) and deserialisation runs again.
fn extract_all(merged: &mut Value, sources: &Sources) -> (Option<RawConfig>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let error = match RawConfig::deserialize(&*merged) {
            Ok(raw) => return (Some(raw), problems),
            Err(error) => error,
        };
        let key = display_key(&error.path);
        problems.push(ConfigProblem {
            source: sources.of(&key),
            message: key_message(&key, &error.kind),
            key: (!key.is_empty()).then_some(key),
        });
        if !remove(merged, &error.path) {
            break;
        }
    }
    (None, problems)
}

/// The problem of a file figment could not read (broken JSON).
fn unreadable(error: &figment::Error) -> ConfigProblem {
    let source = match error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) => ValueSource::File(path.clone()),
        _ => ValueSource::Default,
    };
    ConfigProblem { key: None, source, message: unreadable_message(&error.kind) }
}

//! Reload on change (`watch`): one file watcher for every plugin (notify, through
//! notify-debouncer-full, which merges the kernel's many events per write). A change to a
//! file under one of a plugin's watched paths or globs reloads it with trigger `watch`, once
//! the changes have settled for [`SETTLE`] (an editor writes a file several times: one reload,
//! not five). Editor swap, backup and temp files never count ([`is_editor_litter`]), nor does
//! a file being read (a new process opening its own code).
//!
//! What is watched follows the plugins as they run: the plan is made again when the host's
//! plugin list changes or a plugin's running entry does (a config reload, a reload that read a
//! new entry). A watched path that does not exist is a warning, not a failed start: its
//! directory is watched when it exists, so the file may come later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode, event::ModifyKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::{Action, ActionDoor, Trigger};
use crate::plugins::PluginList;
use crate::plugins::spec::{PluginConfig, WatchPattern};

/// The kernel's events for one path are merged over this.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A plugin is reloaded once no change under its paths came for this long.
pub const SETTLE: Duration = Duration::from_millis(500);
/// How often the running entries are compared with the plan (a reload may bring a new `watch`).
const FOLLOW_ENTRIES: Duration = Duration::from_secs(1);

/// Files editors and tools write beside the real ones: vim's `.swp`/`.swo`/`.swx` and its
/// `4913` probe, backups ending in `~`, emacs' `.#lock` and `#autosave#`, GNOME's
/// `.goutputstream-*`, kate's `.kate-swp`, `.tmp` files, and Python's byte-code caches (which
/// a reloaded plugin writes itself).
pub fn is_editor_litter(path: &Path) -> bool {
    if path.components().any(|c| c.as_os_str() == "__pycache__" || c.as_os_str() == ".git") {
        return true;
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name == "4913"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name.starts_with(".goutputstream-")
        || [".swp", ".swo", ".swx", ".swn", ".kate-swp", ".tmp", ".pyc"].iter().any(|ext| name.ends_with(ext))
}

/// Which changed paths are one plugin's business.
#[derive(Debug)]
enum Matcher {
    /// A file (or a path that does not exist yet).
    Exact(PathBuf),
    /// Anything under a directory.
    Under(PathBuf),
    Glob(GlobMatcher),
}

impl Matcher {
    fn matches(&self, path: &Path) -> bool {
        match self {
            Matcher::Exact(exact) => path == exact,
            Matcher::Under(dir) => path.starts_with(dir),
            Matcher::Glob(glob) => glob.is_match(path),
        }
    }
}

/// What to watch for every plugin: the matchers per plugin and the directories to watch.
#[derive(Debug, Default)]
struct Plan {
    matchers: Vec<(String, Vec<Matcher>)>,
    /// Each directory watched, recursively or not (recursive wins when both are asked).
    roots: BTreeMap<PathBuf, RecursiveMode>,
}

impl Plan {
    /// The plan for `configs`; every entry that cannot be watched is a warning.
    fn of(configs: &[Arc<PluginConfig>]) -> Plan {
        let mut plan = Plan::default();
        for config in configs.iter().filter(|c| !c.watch.is_empty()) {
            let name = config.name.as_str();
            let matchers = config.watch.iter().filter_map(|pattern| plan.add(name, pattern)).collect();
            plan.matchers.push((name.to_owned(), matchers));
        }
        plan
    }

    fn add(&mut self, plugin: &str, WatchPattern(path): &WatchPattern) -> Option<Matcher> {
        let shown = path.display();
        let (matcher, root, mode) = if is_glob(path) {
            let glob = Glob::new(&path.to_string_lossy())
                .map_err(|e| warn!(plugin, "watch {shown:?}: not a valid glob ({e}); not watched"))
                .ok()?;
            let base: PathBuf = path.components().take_while(|c| !is_glob(Path::new(c.as_os_str()))).collect();
            (Matcher::Glob(glob.compile_matcher()), base, RecursiveMode::Recursive)
        } else if path.is_dir() {
            (Matcher::Under(path.clone()), path.clone(), RecursiveMode::Recursive)
        } else {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if !path.exists() {
                warn!(plugin, "watch {shown:?} does not exist (yet); its directory is watched for it");
            }
            (Matcher::Exact(path.clone()), parent, RecursiveMode::NonRecursive)
        };
        if !root.is_dir() {
            warn!(plugin, "watch {shown:?}: directory {:?} does not exist; not watched", root.display());
            return None;
        }
        let mode = match self.roots.get(&root) {
            Some(RecursiveMode::Recursive) => RecursiveMode::Recursive,
            _ => mode,
        };
        self.roots.insert(root, mode);
        Some(matcher)
    }

    /// The plugins that `path` concerns.
    fn plugins_for<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a str> + 'a {
        self.matchers.iter().filter(|(_, m)| m.iter().any(|m| m.matches(path))).map(|(name, _)| name.as_str())
    }
}

fn is_glob(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '[', '{'])
}

/// A change worth a reload: something was written, created, removed or renamed, not read.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// The watcher and the directories it watches now.
struct Armed {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    roots: BTreeMap<PathBuf, RecursiveMode>,
}

impl Armed {
    /// Watch `roots` from now on: directories no longer wanted are let go, new ones added.
    fn arm(&mut self, roots: &BTreeMap<PathBuf, RecursiveMode>) {
        for (root, mode) in &self.roots {
            if roots.get(root) != Some(mode) {
                let _ = self.debouncer.unwatch(root);
            }
        }
        for (root, mode) in roots {
            if self.roots.get(root) != Some(mode)
                && let Err(e) = self.debouncer.watch(root, *mode)
            {
                warn!("cannot watch {:?}: {e}", root.display());
            }
        }
        self.roots = roots.clone();
    }
}

/// What a reload-on-change stands at for one plugin.
#[derive(Debug, Default)]
struct Pending {
    /// Reload once this passes with no further change (None: nothing to do).
    due: Option<Instant>,
    /// The first changed path, named in the trigger.
    path: Option<PathBuf>,
    /// A reload is under way; a change meanwhile reloads again when it has finished.
    running: bool,
}

/// Watch every plugin's `watch` paths until `stop`, reloading through `door`.
pub async fn watch_files(mut registry: watch::Receiver<PluginList>, door: ActionDoor, stop: CancellationToken) {
    let (changes, mut changed) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut armed: Option<Armed> = None;
    let mut plan = Plan::default();
    let mut entries: Vec<Arc<PluginConfig>> = Vec::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let (done, mut finished) = mpsc::unbounded_channel::<String>();
    let mut follow = tokio::time::interval(FOLLOW_ENTRIES);
    loop {
        // A plugin whose reload is under way waits for it to finish first.
        let next_due = pending.values().filter(|p| !p.running).filter_map(|p| p.due).min();
        tokio::select! {
            _ = follow.tick() => {}
            Ok(()) = registry.changed() => {}
            Some(paths) = changed.recv() => {
                let at = Instant::now() + SETTLE;
                for path in paths.iter().filter(|p| !is_editor_litter(p)) {
                    for plugin in plan.plugins_for(path) {
                        let p = pending.entry(plugin.to_owned()).or_default();
                        p.due = Some(at);
                        p.path.get_or_insert_with(|| path.clone());
                    }
                }
                continue;
            }
            Some(name) = finished.recv() => {
                if let Some(p) = pending.get_mut(&name) {
                    p.running = false;
                }
                continue;
            }
            () = sleep_until(next_due) => {
                let now = Instant::now();
                for (name, p) in pending.iter_mut().filter(|(_, p)| !p.running && p.due.is_some_and(|d| d <= now)) {
                    p.due = None;
                    p.running = true;
                    let path = p.path.take().map(|p| p.display().to_string()).unwrap_or_default();
                    info!(plugin = name, path, "a watched file changed: reloading");
                    let (door, done, name) = (door.clone(), done.clone(), name.clone());
                    tokio::spawn(async move {
                        // The door audits the outcome; a refusal (busy) waits for the next change.
                        let _ = door.act(&name, Action::Reload, Trigger::Watch { path }).await;
                        let _ = done.send(name);
                    });
                }
                continue;
            }
            () = stop.cancelled() => return,
        }
        // The plugins or their entries may have changed: plan again when they did.
        let now: Vec<Arc<PluginConfig>> = registry.borrow_and_update().iter().map(|h| h.config()).collect();
        let same = now.len() == entries.len() && now.iter().zip(&entries).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            continue;
        }
        let wanted = |list: &[Arc<PluginConfig>]| -> Vec<(String, Vec<WatchPattern>)> {
            list.iter().map(|c| (c.name.to_string(), c.watch.clone())).filter(|(_, w)| !w.is_empty()).collect()
        };
        let replan = wanted(&now) != wanted(&entries);
        entries = now;
        if !replan {
            continue;
        }
        plan = Plan::of(&entries);
        let names: HashSet<&str> = plan.matchers.iter().map(|(n, _)| n.as_str()).collect();
        pending.retain(|name, p| p.running || names.contains(name.as_str()));
        if armed.is_none() && !plan.roots.is_empty() {
            armed = start_watcher(changes.clone());
        }
        if let Some(armed) = armed.as_mut() {
            armed.arm(&plan.roots);
            info!(plugins = plan.matchers.len(), directories = plan.roots.len(), "watching plugin files");
        }
    }
}

/// Sleep until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The file watcher, forwarding the changed paths of every batch to `changes`.
fn start_watcher(changes: mpsc::UnboundedSender<Vec<PathBuf>>) -> Option<Armed> {
    let forward = move |result: DebounceEventResult| match result {
        Ok(events) => {
            let paths: Vec<PathBuf> =
                events.into_iter().filter(|e| is_change(&e.kind)).flat_map(|e| e.event.paths).collect();
            if !paths.is_empty() {
                let _ = changes.send(paths);
            }
        }
        Err(errors) => errors.iter().for_each(|e| warn!("watching plugin files: {e}")),
    };
    match new_debouncer(DEBOUNCE, None, forward) {
        Ok(debouncer) => Some(Armed { debouncer, roots: BTreeMap::new() }),
        Err(e) => {
            warn!("cannot watch plugin files ({e}); watch is off until the next config reload");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_swap_backup_and_temp_files_are_litter() {
        for litter in [
            "/p/.plugin.py.swp",
            "/p/.plugin.py.swx",
            "/p/plugin.py~",
            "/p/.#plugin.py",
            "/p/#plugin.py#",
            "/p/4913",
            "/p/.goutputstream-ABC123",
            "/p/__pycache__/plugin.cpython-311.pyc",
            "/p/x.tmp",
        ] {
            assert!(is_editor_litter(Path::new(litter)), "{litter}");
        }
        for real in ["/p/plugin.py", "/p/VERSION", "/p/swp", "/p/lib/4913.py", "/p/data.json"] {
            assert!(!is_editor_litter(Path::new(real)), "{real}");
        }
    }

    fn config(name: &str, watch: &[&Path]) -> Arc<PluginConfig> {
        use crate::plugins::builtin::Builtin;
        use crate::plugins::spec::{DEFAULT_COMMAND_TIMEOUT, Launch, PluginName};
        Arc::new(PluginConfig {
            name: PluginName::new(name).expect("a valid name"),
            launch: Launch::Builtin(Builtin::DiceRoller),
            env: Default::default(),
            cwd: None,
            version: None,
            commands: Vec::new(),
            restart: Default::default(),
            reload: Default::default(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            memory_limit: None,
            watch: watch.iter().map(|p| WatchPattern(p.to_path_buf())).collect(),
        })
    }

    #[test]
    fn files_directories_and_globs_match_their_own_paths_only() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        std::fs::create_dir(root.join("lib")).expect("created");
        std::fs::write(root.join("VERSION"), "1").expect("written");
        let plan = Plan::of(&[
            config("file", &[&root.join("VERSION")]),
            config("dir", &[&root.join("lib")]),
            config("glob", &[&root.join("*.py")]),
            config("absent", &[&root.join("no/such/dir/x")]),
        ]);
        let who = |p: &str| plan.plugins_for(&root.join(p)).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(who("VERSION"), ["file"]);
        assert_eq!(who("lib/a/b.txt"), ["dir"]);
        assert_eq!(who("plugin.py"), ["glob"]);
        assert!(who("other").is_empty());
        assert_eq!(plan.roots.get(root), Some(&RecursiveMode::Recursive), "the glob's base, recursive wins");
        assert_eq!(plan.roots.len(), 2, "{:?}", plan.roots);
    }

    #[test]
    fn reading_a_file_is_no_change() {
        use notify_debouncer_full::notify::event::{AccessKind, CreateKind, DataChange, MetadataKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Any)));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
    }
}

//! Which plugin answers which chat command. A plugin handles its built-in commands, those
//! listed in its config entry and those announced in its hello; names match without regard to
//! ASCII case (`!ROLL` is `!roll`). When two plugins claim one name, the first in configuration
//! order gets it and the conflict is reported; the host's own commands (`!help`, `!admin`) always win.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::PluginHandle;
use crate::plugins::spec::{Launch, PluginConfig};

/// The name the host answers under in chat, and in conflicts over its own commands.
pub const HOST_NAME: &str = "rosey";
/// The command the host answers itself with the list of commands.
pub const HELP_COMMAND: &str = "help";
/// The operator's commands (`!admin reload NAME`), answered by the host's admin desk.
pub const ADMIN_COMMAND: &str = "admin";
/// The host's own commands: they always win over a plugin's, and `!help` lists them.
const HOST_COMMANDS: [&str; 2] = [ADMIN_COMMAND, HELP_COMMAND];

/// Who answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Host,
    /// The plugin at this index of the handles the table was built from.
    Plugin(usize),
}

/// A command name claimed more than once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandConflict {
    /// As the plugin it is routed to spells it.
    pub command: String,
    /// The plugin (or `rosey`) that gets it.
    pub routed_to: String,
    /// Every claimant, in configuration order (the host first).
    pub claimed_by: Vec<String>,
}

#[derive(Debug)]
struct Route {
    owner: Owner,
    /// The owner's spelling, which is what the plugin is sent.
    spelling: String,
}

/// Every command and its owner, as of the plugins' latest hellos.
#[derive(Debug)]
pub struct CommandTable {
    /// Keyed by the lower-cased name.
    routes: BTreeMap<String, Route>,
    conflicts: Vec<CommandConflict>,
    /// Indexed like the handles: the collector asks for every plugin's share in each snapshot,
    /// which must not cost a scan of every route and conflict per plugin.
    by_plugin: Vec<PluginShare>,
    /// What the table was built from, to tell when it is out of date.
    sources: Vec<Claims>,
}

/// One plugin's part of the table.
#[derive(Debug, Default)]
struct PluginShare {
    /// The commands routed to it, sorted like the routes.
    commands: Vec<String>,
    /// Indexes into the table's conflicts of those it takes part in, in their order.
    conflicts: Vec<usize>,
}

/// Where one plugin's commands come from: its config entry (a reload may replace it) and its
/// latest hello.
#[derive(Debug)]
struct Claims {
    config: Arc<PluginConfig>,
    announced: Arc<[String]>,
}

impl Claims {
    fn of(handle: &PluginHandle) -> Claims {
        let status = handle.status.borrow();
        Claims { config: status.config.clone(), announced: status.announced_commands.clone() }
    }

    fn is_current(&self, handle: &PluginHandle) -> bool {
        let status = handle.status.borrow();
        Arc::ptr_eq(&status.config, &self.config) && Arc::ptr_eq(&status.announced_commands, &self.announced)
    }

    /// Built-in commands first, then the config entry's, then the hello's.
    fn commands(&self) -> impl Iterator<Item = &str> {
        let builtin: &[&str] = match &self.config.launch {
            Launch::Builtin(builtin) => builtin.commands(),
            Launch::Command { .. } => &[],
        };
        builtin
            .iter()
            .copied()
            .chain(self.config.commands.iter().map(String::as_str))
            .chain(self.announced.iter().map(String::as_str))
    }
}

impl CommandTable {
    /// The table for `handles`, given in configuration order.
    pub fn build(handles: &[Arc<PluginHandle>]) -> CommandTable {
        let sources: Vec<Claims> = handles.iter().map(|h| Claims::of(h)).collect();
        let mut routes = BTreeMap::new();
        let mut claims: BTreeMap<String, Vec<Owner>> = BTreeMap::new();
        for command in HOST_COMMANDS {
            routes.insert(command.to_owned(), Route { owner: Owner::Host, spelling: command.to_owned() });
            claims.insert(command.to_owned(), vec![Owner::Host]);
        }
        for (index, source) in sources.iter().enumerate() {
            let mut own = BTreeSet::new();
            for command in source.commands() {
                let key = command.to_ascii_lowercase();
                // A plugin listing a command twice (config and hello) is no conflict.
                if command.is_empty() || !own.insert(key.clone()) {
                    continue;
                }
                claims.entry(key.clone()).or_default().push(Owner::Plugin(index));
                routes
                    .entry(key)
                    .or_insert_with(|| Route { owner: Owner::Plugin(index), spelling: command.to_owned() });
            }
        }
        let mut by_plugin: Vec<PluginShare> = handles.iter().map(|_| PluginShare::default()).collect();
        for route in routes.values() {
            if let Owner::Plugin(index) = route.owner {
                by_plugin[index].commands.push(route.spelling.clone());
            }
        }
        let name_of = |owner: &Owner| match owner {
            Owner::Host => HOST_NAME.to_owned(),
            Owner::Plugin(index) => handles[*index].name().to_owned(),
        };
        let mut conflicts = Vec::new();
        for (key, claimants) in claims.into_iter().filter(|(_, by)| by.len() > 1) {
            for claimant in &claimants {
                if let Owner::Plugin(index) = claimant {
                    by_plugin[*index].conflicts.push(conflicts.len());
                }
            }
            let claimed_by: Vec<String> = claimants.iter().map(name_of).collect();
            conflicts.push(CommandConflict {
                command: routes.get(&key).map_or(key.clone(), |r| r.spelling.clone()),
                routed_to: claimed_by[0].clone(),
                claimed_by,
            });
        }
        CommandTable { routes, conflicts, by_plugin, sources }
    }

    /// Was the table built from the plugins' current config entries and hellos?
    fn is_current(&self, handles: &[Arc<PluginHandle>]) -> bool {
        self.sources.len() == handles.len() && handles.iter().zip(&self.sources).all(|(h, c)| c.is_current(h))
    }

    /// Rebuild the table unless it is current with `handles` (a hello, a reload or a new list
    /// of plugins makes it out of date); was it rebuilt?
    pub fn refresh(&mut self, handles: &[Arc<PluginHandle>]) -> bool {
        let stale = !self.is_current(handles);
        if stale {
            *self = CommandTable::build(handles);
        }
        stale
    }

    /// Who answers `command`, and the name to send it under.
    pub fn route(&self, command: &str) -> Option<(Owner, &str)> {
        self.routes.get(&command.to_ascii_lowercase()).map(|r| (r.owner, r.spelling.as_str()))
    }

    pub fn conflicts(&self) -> &[CommandConflict] {
        &self.conflicts
    }

    /// The conflicts the plugin at `index` takes part in.
    pub fn conflicts_of(&self, index: usize) -> impl Iterator<Item = &CommandConflict> {
        let share = self.by_plugin.get(index).map_or(&[][..], |share| &share.conflicts);
        share.iter().map(|&conflict| &self.conflicts[conflict])
    }

    /// The commands routed to the plugin at `index`, sorted.
    pub fn commands_of(&self, index: usize) -> &[String] {
        self.by_plugin.get(index).map_or(&[], |share| &share.commands)
    }

    /// Every command and who answers it, sorted by name: `(command, owner)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Owner)> {
        self.routes.values().map(|r| (r.spelling.as_str(), r.owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::builtin::Builtin;
    use crate::plugins::tests::named_handle;

    fn plugin(name: &str, launch: Launch, configured: &[&str], announced: &[&str]) -> Arc<PluginHandle> {
        let (handle, _rx) = named_handle(name, launch, configured, 1);
        let announced: Arc<[String]> = announced.iter().map(|c| c.to_string()).collect();
        handle.status.send_modify(|s| s.announced_commands = announced);
        Arc::new(handle)
    }

    fn program() -> Launch {
        Launch::Command { program: "x".into(), args: vec![] }
    }

    #[test]
    fn builtin_configured_and_announced_commands_are_routed() {
        let handles = [
            plugin("dice", Launch::Builtin(Builtin::DiceRoller), &[], &[]),
            plugin("weather", program(), &["weather"], &[]),
            plugin("echo", program(), &[], &["Echo"]),
        ];
        let table = CommandTable::build(&handles);
        assert_eq!(table.route("roll"), Some((Owner::Plugin(0), "roll")), "known before the hello");
        assert_eq!(table.route("weather"), Some((Owner::Plugin(1), "weather")));
        assert_eq!(table.route("ECHO"), Some((Owner::Plugin(2), "Echo")), "any case, sent as announced");
        assert_eq!(table.route("help"), Some((Owner::Host, "help")));
        assert_eq!(table.route("8ball"), None);
        assert!(table.conflicts().is_empty());
        assert_eq!(table.commands_of(2), ["Echo"]);
    }

    #[test]
    fn the_first_claimant_wins_and_the_conflict_is_named() {
        let handles = [
            plugin("dice", Launch::Builtin(Builtin::DiceRoller), &[], &["roll"]),
            plugin("dice2", program(), &[], &["ROLL", "help", "Admin"]),
        ];
        let table = CommandTable::build(&handles);
        assert_eq!(table.route("roll"), Some((Owner::Plugin(0), "roll")));
        assert_eq!(table.route("help"), Some((Owner::Host, "help")), "the host keeps its own command");
        assert_eq!(table.route("admin"), Some((Owner::Host, "admin")), "and the operator's");
        let roll = CommandConflict {
            command: "roll".into(),
            routed_to: "dice".into(),
            claimed_by: vec!["dice".into(), "dice2".into()],
        };
        let help = CommandConflict {
            command: "help".into(),
            routed_to: "rosey".into(),
            claimed_by: vec!["rosey".into(), "dice2".into()],
        };
        let admin = CommandConflict {
            command: "admin".into(),
            routed_to: "rosey".into(),
            claimed_by: vec!["rosey".into(), "dice2".into()],
        };
        assert_eq!(table.conflicts(), [admin, help.clone(), roll.clone()]);
        assert_eq!(table.conflicts_of(0).collect::<Vec<_>>(), [&roll]);
        assert!(table.commands_of(1).is_empty());
    }

    #[test]
    fn each_plugin_has_its_commands_sorted_and_every_conflict_it_takes_part_in() {
        let handles = [
            plugin("first", program(), &["zeta", "Mid"], &["alpha", "ALPHA"]),
            plugin("second", program(), &["ALPHA", "beta"], &["Zeta"]),
            plugin("third", program(), &["gamma"], &[]),
        ];
        let table = CommandTable::build(&handles);
        assert_eq!(table.commands_of(0), ["alpha", "Mid", "zeta"], "sorted without regard to case");
        assert_eq!(table.commands_of(1), ["beta"], "the commands it lost are not its own");
        assert_eq!(table.commands_of(2), ["gamma"]);
        let conflict = |command: &str| CommandConflict {
            command: command.into(),
            routed_to: "first".into(),
            claimed_by: vec!["first".into(), "second".into()],
        };
        let (alpha, zeta) = (conflict("alpha"), conflict("zeta"));
        assert_eq!(table.conflicts_of(0).collect::<Vec<_>>(), [&alpha, &zeta], "the winner sees them");
        assert_eq!(table.conflicts_of(1).collect::<Vec<_>>(), [&alpha, &zeta], "and so does the loser");
        assert_eq!(table.conflicts_of(2).count(), 0);
        assert!(table.commands_of(3).is_empty() && table.conflicts_of(3).count() == 0, "no plugin there");
    }

    #[test]
    fn a_new_order_of_the_plugins_makes_the_table_out_of_date() {
        let handles = [plugin("dice", program(), &["roll"], &[]), plugin("dice2", program(), &["roll"], &[])];
        let mut table = CommandTable::build(&handles);
        let reordered = [handles[1].clone(), handles[0].clone()];
        assert!(table.refresh(&reordered));
        assert_eq!(table.conflicts()[0].routed_to, "dice2", "the first in the new order wins");
        assert_eq!(table.commands_of(0), ["roll"]);
        assert!(table.refresh(&handles[..1]), "a plugin removed");
        assert_eq!(table.conflicts().len(), 0);
    }

    #[test]
    fn a_new_hello_makes_the_table_out_of_date() {
        let handles = [plugin("echo", program(), &[], &[])];
        let mut table = CommandTable::build(&handles);
        assert!(!table.refresh(&handles), "nothing changed");
        handles[0].status.send_modify(|s| s.announced_commands = Arc::from(["echo".to_owned()]));
        assert!(table.refresh(&handles), "the hello changed the claims");
        assert_eq!(table.route("echo"), Some((Owner::Plugin(0), "echo")));
    }
}

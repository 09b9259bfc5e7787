//! The plugin wire format: this module owns it.
//!
//! A plugin is a child process that speaks JSON lines: the host writes one
//! [`HostMessage`] per line to the plugin's stdin, and the plugin writes one
//! [`PluginMessage`] per line to its stdout. Every line is a single UTF-8 JSON
//! object with a `"type"` field naming the message kind. Unknown fields are
//! ignored so that either side can add fields without breaking the other.
//!
//! The full description for plugin authors lives in `docs/plugin-protocol.md`;
//! keep the two in step.

use serde::{Deserialize, Serialize};

/// The longest line, in bytes (excluding the newline), the host accepts from a
/// plugin. Longer lines are rejected and counted as protocol errors.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Host -> plugin, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// A chat command addressed to this plugin, e.g. `alice: !roll 2d6` is
    /// `command: "roll", args: "2d6", user: "alice"`. The plugin should answer
    /// with a [`PluginMessage::Reply`] carrying the same `id`.
    Command { id: u64, command: String, args: String, user: String },
}

/// Plugin -> host, one JSON object per line. Unknown fields are ignored (forward compatible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginMessage {
    /// Optional greeting: the plugin's version and the commands it handles.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default)]
        commands: Vec<String>,
    },
    /// The answer to the [`HostMessage::Command`] with the same `id`.
    Reply { id: u64, text: String },
}

/// Why a line could not be understood. The messages are aimed at plugin
/// authors: they say what was wrong and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line is {len} bytes long; the limit is {MAX_LINE_BYTES} bytes per line")]
    LineTooLong { len: usize },
    /// The line is not a JSON value at all.
    #[error("line is not valid JSON ({0}); send exactly one JSON object per line")]
    InvalidJson(#[source] serde_json::Error),
    /// The line is JSON but not an object with a string `"type"` field.
    #[error("line is not a JSON object with a string \"type\" field (expected one of {expected})")]
    MissingType { expected: &'static str },
    /// The `"type"` field names a message kind this side does not know.
    #[error("unknown message type {found:?} (expected one of {expected})")]
    UnknownType { found: String, expected: &'static str },
    /// The message kind is known but its fields are missing or have the wrong type.
    #[error("invalid {kind:?} message: {source}")]
    InvalidMessage {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Message kinds a plugin may send, for error messages and validation.
const PLUGIN_TYPES: &[&str] = &["hello", "reply"];
const PLUGIN_TYPES_TEXT: &str = "\"hello\", \"reply\"";
/// Message kinds the host may send.
const HOST_TYPES: &[&str] = &["command"];
const HOST_TYPES_TEXT: &str = "\"command\"";

impl HostMessage {
    /// Serialise as one JSON line, including the trailing `'\n'`.
    pub fn to_line(&self) -> String {
        to_line(self)
    }

    /// Parse one line (a trailing newline / `\r\n` is allowed). Used by plugins
    /// written in Rust, such as the built-ins.
    pub fn parse(line: &str) -> Result<HostMessage, ProtocolError> {
        parse_line(line, HOST_TYPES, HOST_TYPES_TEXT)
    }
}

impl PluginMessage {
    /// Serialise as one JSON line, including the trailing `'\n'`.
    pub fn to_line(&self) -> String {
        to_line(self)
    }

    /// Parse one line from a plugin (a trailing newline / `\r\n` is allowed).
    /// Unknown fields are ignored; unknown message types are an error.
    pub fn parse(line: &str) -> Result<PluginMessage, ProtocolError> {
        parse_line(line, PLUGIN_TYPES, PLUGIN_TYPES_TEXT)
    }
}

fn to_line<T: Serialize>(message: &T) -> String {
    // Invariant: the message enums contain only strings, integers, options and
    // vectors of strings, with derived `Serialize` impls, so serialising to
    // JSON cannot fail (no maps with non-string keys, no custom serialisers,
    // no I/O).
    let mut line = serde_json::to_string(message).expect("protocol messages always serialise to JSON");
    line.push('\n');
    line
}

fn parse_line<T: serde::de::DeserializeOwned>(
    line: &str,
    known: &[&str],
    expected: &'static str,
) -> Result<T, ProtocolError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.len() > MAX_LINE_BYTES {
        return Err(ProtocolError::LineTooLong { len: line.len() });
    }
    // Parse in two steps so the error can say *what* was wrong: bad JSON,
    // missing/unknown type, or bad fields for a known type.
    let value: serde_json::Value = serde_json::from_str(line).map_err(ProtocolError::InvalidJson)?;
    let kind = match value.get("type").and_then(serde_json::Value::as_str) {
        Some(kind) => kind.to_owned(),
        None => return Err(ProtocolError::MissingType { expected }),
    };
    if !known.contains(&kind.as_str()) {
        return Err(ProtocolError::UnknownType { found: kind, expected });
    }
    serde_json::from_value(value).map_err(|source| ProtocolError::InvalidMessage { kind, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_serialises_to_one_tagged_line() {
        let msg = HostMessage::Command { id: 7, command: "roll".into(), args: "2d6".into(), user: "alice".into() };
        let line = msg.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "command", "id": 7, "command": "roll", "args": "2d6", "user": "alice"})
        );
        assert_eq!(HostMessage::parse(&line).unwrap(), msg);
    }

    #[test]
    fn newlines_inside_text_stay_escaped() {
        let msg = PluginMessage::Reply { id: 1, text: "line one\nline two\r\n".into() };
        let line = msg.to_line();
        assert_eq!(line.matches('\n').count(), 1, "only the terminator: {line:?}");
        assert_eq!(PluginMessage::parse(&line).unwrap(), msg);
    }

    #[test]
    fn plugin_messages_round_trip() {
        let messages = [
            PluginMessage::Hello { version: Some("1.2.3".into()), commands: vec!["roll".into(), "8ball".into()] },
            PluginMessage::Hello { version: None, commands: vec![] },
            PluginMessage::Reply { id: u64::MAX, text: "🎲 2d6: [1, 2] = 3".into() },
        ];
        for msg in messages {
            assert_eq!(PluginMessage::parse(&msg.to_line()).unwrap(), msg);
        }
    }

    #[test]
    fn hello_fields_are_optional() {
        assert_eq!(
            PluginMessage::parse(r#"{"type":"hello"}"#).unwrap(),
            PluginMessage::Hello { version: None, commands: vec![] }
        );
        assert_eq!(
            PluginMessage::parse(r#"{"type":"hello","version":null,"commands":["echo"]}"#).unwrap(),
            PluginMessage::Hello { version: None, commands: vec!["echo".into()] }
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let msg =
            PluginMessage::parse(r#"{"type":"reply","id":3,"text":"hi","colour":"blue","extra":{"nested":[1,2]}}"#)
                .unwrap();
        assert_eq!(msg, PluginMessage::Reply { id: 3, text: "hi".into() });
        let cmd =
            HostMessage::parse(r##"{"type":"command","id":1,"command":"x","args":"","user":"u","channel":"#c"}"##)
                .unwrap();
        assert!(matches!(cmd, HostMessage::Command { id: 1, .. }));
    }

    #[test]
    fn crlf_terminator_is_accepted() {
        let msg = PluginMessage::parse("{\"type\":\"reply\",\"id\":1,\"text\":\"ok\"}\r\n").unwrap();
        assert_eq!(msg, PluginMessage::Reply { id: 1, text: "ok".into() });
    }

    #[test]
    fn unknown_type_is_an_error_naming_it() {
        let err = PluginMessage::parse(r#"{"type":"shout","text":"hi"}"#).unwrap_err();
        match &err {
            ProtocolError::UnknownType { found, .. } => assert_eq!(found, "shout"),
            other => panic!("expected UnknownType, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("shout") && text.contains("reply"), "{text}");
        // A host-only type is unknown coming from a plugin, and vice versa.
        assert!(matches!(
            PluginMessage::parse(r#"{"type":"command","id":1,"command":"a","args":"","user":"u"}"#),
            Err(ProtocolError::UnknownType { .. })
        ));
        assert!(matches!(
            HostMessage::parse(r#"{"type":"reply","id":1,"text":"x"}"#),
            Err(ProtocolError::UnknownType { .. })
        ));
    }

    #[test]
    fn invalid_json_is_an_error() {
        for line in ["", "not json", "{\"type\":\"reply\"", "{'type':'reply'}"] {
            assert!(matches!(PluginMessage::parse(line), Err(ProtocolError::InvalidJson(_))), "{line:?}");
        }
    }

    #[test]
    fn missing_or_non_string_type_is_an_error() {
        for line in [r#"{"id":1,"text":"x"}"#, r#"{"type":5}"#, "[1,2]", "42", "\"reply\""] {
            assert!(matches!(PluginMessage::parse(line), Err(ProtocolError::MissingType { .. })), "{line:?}");
        }
    }

    #[test]
    fn bad_fields_name_the_message_kind() {
        let err = PluginMessage::parse(r#"{"type":"reply","text":"no id"}"#).unwrap_err();
        assert!(matches!(&err, ProtocolError::InvalidMessage { kind, .. } if kind == "reply"));
        assert!(err.to_string().contains("id"), "{err}");

        let err = PluginMessage::parse(r#"{"type":"reply","id":-1,"text":"x"}"#).unwrap_err();
        assert!(matches!(err, ProtocolError::InvalidMessage { .. }));

        let err = PluginMessage::parse(r#"{"type":"hello","commands":"roll"}"#).unwrap_err();
        assert!(matches!(err, ProtocolError::InvalidMessage { .. }));
    }

    #[test]
    fn oversized_lines_are_rejected() {
        let text = "x".repeat(MAX_LINE_BYTES);
        let line = PluginMessage::Reply { id: 1, text }.to_line();
        assert!(matches!(
            PluginMessage::parse(&line),
            Err(ProtocolError::LineTooLong { len }) if len == line.len() - 1
        ));

        // Exactly at the limit is fine.
        let overhead = r#"{"type":"reply","id":1,"text":""}"#.len();
        let text = "x".repeat(MAX_LINE_BYTES - overhead);
        let line = PluginMessage::Reply { id: 1, text }.to_line();
        assert_eq!(line.len() - 1, MAX_LINE_BYTES);
        assert!(PluginMessage::parse(&line).is_ok());
    }
}

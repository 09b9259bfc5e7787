//! Rosey on a real IRC network (InspIRCd + Anope, see `tests/common/irc.rs`): commands and
//! replies in channels and private messages, flood control, reconnects, TLS, SASL, admins the
//! server vouches for, hostile replies and hostile servers.

use std::time::Duration;

use crate::common::irc::{Human, HumanOptions, IrcNetwork};

/// The harness itself: two people talk through the network, and the server tags a message with
/// the sender's account only when the sender is logged in.
#[test]
fn irc_network_carries_messages_and_vouches_for_logged_in_accounts() {
    let Some(network) = IrcNetwork::start("irc_network_carries_messages_and_vouches_for_logged_in_accounts") else {
        return;
    };
    let mut alice = network.register("alice", "alice-pw");
    let mut watcher = Human::connect_with(&network, "watcher", HumanOptions { tags: true, ..Default::default() });
    let mut mallory = Human::connect(&network, "mallory");
    for human in [&mut alice, &mut watcher, &mut mallory] {
        human.join("#harness");
    }

    alice.say("#harness", "!roll 2d6");
    let from_alice = watcher.wait_for("alice's message", |l| l.is_privmsg("alice", "#harness"));
    assert_eq!(from_alice.text(), "!roll 2d6");
    assert_eq!(from_alice.tag("account"), Some("alice"), "{}", from_alice.raw);

    mallory.say("#harness", "!roll 2d6");
    let from_mallory = watcher.wait_for("mallory's message", |l| l.is_privmsg("mallory", "#harness"));
    assert_eq!(from_mallory.tag("account"), None, "{}", from_mallory.raw);

    // SASL PLAIN logs in to the same account from a fresh connection.
    let mut alice2 = Human::connect_with(
        &network,
        "alice_laptop",
        HumanOptions { sasl: Some(("alice".into(), "alice-pw".into())), ..Default::default() },
    );
    alice2.join("#harness");
    alice2.say("#harness", "hello");
    let tagged = watcher.wait_for("alice_laptop's message", |l| l.is_privmsg("alice_laptop", "#harness"));
    assert_eq!(tagged.tag("account"), Some("alice"), "{}", tagged.raw);
}

/// The strict port really cuts off a flooder, so a bot that stays connected there is proof of
/// its own flood control.
#[test]
fn irc_network_strict_port_disconnects_a_flooder() {
    let Some(network) = IrcNetwork::start("irc_network_strict_port_disconnects_a_flooder") else {
        return;
    };
    let mut flooder = Human::connect_with(
        &network,
        "flooder",
        HumanOptions { port: Some(network.ports.strict), ..Default::default() },
    );
    for i in 0..30 {
        flooder.say("flooder", &format!("line {i}"));
    }
    let error =
        flooder.wait_for_within("the server closing the link", Duration::from_secs(20), |l| l.command == "ERROR");
    assert!(error.text().contains("Excess Flood"), "{}", error.raw);
}

//! Rosey on a real IRC network (InspIRCd + Anope, see `tests/common/irc.rs`): commands and
//! replies in channels and private messages, flood control, reconnects, TLS, SASL, admins the
//! server vouches for, hostile replies and hostile servers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::irc::{Human, HumanOptions, IrcNetwork, Line};
use crate::common::*;

/// The harness itself: two people talk through the network, and the server tags a message with
/// the sender's account only when the sender is logged in.
#[test]
fn irc_network_carries_messages_and_vouches_for_logged_in_accounts() {
    let Some(mut network) = IrcNetwork::start("irc_network_carries_messages_and_vouches_for_logged_in_accounts") else {
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
    assert!(
        network.connections_on(network.ports.humans) >= 4,
        "connections are counted from the log\n{}",
        network.logs()
    );

    // A crashed server comes back with the services linked and the accounts still there.
    drop((alice, alice2, watcher, mallory));
    network.kill_server();
    network.start_server();
    let sasl = HumanOptions { sasl: Some(("alice".into(), "alice-pw".into())), ..Default::default() };
    Human::connect_with(&network, "alice", sasl).quit();
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
    for i in 0..50 {
        flooder.say("flooder", &format!("line {i}"));
    }
    let error =
        flooder.wait_for_within("the server closing the link", Duration::from_secs(20), |l| l.command == "ERROR");
    assert!(error.text().contains("Excess Flood"), "{}", error.raw);
}

/// A bot with the default plugins whose only chat network is `connections` (a `chat.irc` list).
fn bot(connections: Value) -> RoseyBuilder {
    let mut builder = RoseyBuilder::new();
    builder.config["chat"] = json!({ "irc": connections });
    builder
}

/// Wait until `human` sees `nick` join `channel`.
fn wait_joined(human: &mut Human, nick: &str, channel: &str) {
    human.wait_for(&format!("{nick} to join {channel}"), |l| {
        l.command == "JOIN"
            && l.nick().eq_ignore_ascii_case(nick)
            && l.params.first().is_some_and(|c| c.eq_ignore_ascii_case(channel))
    });
}

/// A network, a person in `channel`, and a bot (nick `rosey`) that has joined it.
fn scene(test: &str, channel: &str) -> Option<(IrcNetwork, Human, Rosey)> {
    let network = IrcNetwork::start(test)?;
    let mut alice = Human::connect(&network, "alice");
    alice.join(channel);
    let rosey = bot(json!([network.bot_connection("rosey", &[channel])])).start();
    wait_joined(&mut alice, "rosey", channel);
    Some((network, alice, rosey))
}

#[test]
fn a_roll_in_a_channel_is_answered_in_that_channel() {
    let Some((_network, mut alice, _rosey)) = scene("a_roll_in_a_channel_is_answered_in_that_channel", "#dice") else {
        return;
    };
    alice.say("#dice", "!roll 2d6");
    let reply = alice.wait_for("the bot's reply in #dice", |l| l.is_privmsg("rosey", "#dice"));
    assert!(reply.text().contains("2d6"), "{}", reply.raw);
    assert!(reply.text().contains("alice"), "the reply says whom it answers: {}", reply.raw);
}

#[test]
fn a_command_its_plugin_never_answers_gets_the_timeout_answer_in_its_channel() {
    let test = "a_command_its_plugin_never_answers_gets_the_timeout_answer_in_its_channel";
    let Some(network) = IrcNetwork::start(test) else {
        return;
    };
    let mut alice = Human::connect(&network, "alice");
    alice.join("#slow");
    let mut builder = bot(json!([network.bot_connection("rosey", &["#slow"])]));
    let mut deaf = python_plugin("deaf", "deaf.py", &[]);
    deaf["command_timeout"] = json!(1);
    builder.config["plugins"].as_array_mut().expect("the default fixture lists plugins").push(deaf);
    let _rosey = builder.start();
    wait_joined(&mut alice, "rosey", "#slow");
    alice.say("#slow", "!deaf");
    // The host answers in the plugin's place, and where the command was asked (not on the
    // console, which a reply naming only the plugin and the user once fell back to).
    let reply = alice.wait_for("the timeout answer in #slow", |l| l.is_privmsg("rosey", "#slow"));
    assert!(reply.text().contains("deaf did not answer within 1 s"), "{}", reply.raw);
    // A command after it still gets its own answer in the channel.
    alice.say("#slow", "!roll 1d4");
    let roll = alice.wait_for("the roll's answer in #slow", |l| l.is_privmsg("rosey", "#slow"));
    assert!(roll.text().contains("1d4"), "{}", roll.raw);
}

#[test]
fn a_private_message_is_answered_privately() {
    let Some((network, mut alice, _rosey)) = scene("a_private_message_is_answered_privately", "#quiet") else {
        return;
    };
    let mut bob = Human::connect(&network, "bob");
    bob.join("#quiet");
    alice.say("rosey", "!roll 1d20");
    let reply = alice.wait_for("the bot's private reply", |l| l.is_privmsg("rosey", "alice"));
    assert!(reply.text().contains("1d20"), "{}", reply.raw);
    let in_channel = bob.collect_for(Duration::from_secs(1), |l| l.command == "PRIVMSG" && l.nick() == "rosey");
    assert!(in_channel.is_empty(), "a private command was answered in public: {in_channel:?}");
}

#[test]
fn a_taken_nick_makes_the_bot_use_its_alternate() {
    let Some(network) = IrcNetwork::start("a_taken_nick_makes_the_bot_use_its_alternate") else {
        return;
    };
    let mut squatter = Human::connect(&network, "rosey");
    squatter.join("#alt");
    let mut connection = network.bot_connection("rosey", &["#alt"]);
    connection["alt_nicks"] = json!(["rosey_", "rosey__"]);
    let _rosey = bot(json!([connection])).start();
    wait_joined(&mut squatter, "rosey_", "#alt");
    squatter.say("#alt", "!roll d4");
    let reply = squatter.wait_for("the reply from the alternate nick", |l| l.is_privmsg("rosey_", "#alt"));
    assert!(reply.text().contains("d4"), "{}", reply.raw);
}

/// One bot, two TLS connections to the same listener: with the network's CA it joins and
/// answers; without it the certificate is refused, by name, and nothing falls back to plain.
#[test]
fn tls_with_the_networks_own_ca_is_trusted_and_without_it_refused() {
    let Some(network) = IrcNetwork::start("tls_with_the_networks_own_ca_is_trusted_and_without_it_refused") else {
        return;
    };
    let mut alice = Human::connect(&network, "alice");
    alice.join("#tls");
    let tls = |name: &str, nick: &str| {
        let mut c = network.bot_connection(nick, &["#tls"]);
        c["name"] = json!(name);
        c["server"] = json!("localhost");
        c["port"] = json!(network.ports.tls);
        c["tls"] = json!(true);
        c
    };
    let mut trusted = tls("trusted", "rosey");
    trusted["tls_ca"] = json!(network.ca_file());
    let untrusted = tls("untrusted", "stranger");
    let rosey = bot(json!([trusted, untrusted])).start();
    wait_joined(&mut alice, "rosey", "#tls");
    alice.say("#tls", "!roll 3d6");
    let reply = alice.wait_for("the reply over TLS", |l| l.is_privmsg("rosey", "#tls"));
    assert!(reply.text().contains("3d6"), "{}", reply.raw);

    let refusal = wait_for("a certificate error for the untrusted connection", DEADLINE, || {
        rosey
            .stderr_text()
            .lines()
            .find(|l| l.contains("untrusted") && l.to_lowercase().contains("certificate"))
            .map(str::to_owned)
    });
    assert!(!refusal.contains("panicked"), "{refusal}");
    let joined = alice.collect_for(Duration::from_secs(1), |l| l.command == "JOIN" && l.nick() == "stranger");
    assert!(joined.is_empty(), "the untrusted connection got through: {joined:?}");
}

#[test]
fn a_reply_with_line_breaks_ctcp_markers_and_2000_bytes_arrives_as_safe_split_lines() {
    let Some(network) =
        IrcNetwork::start("a_reply_with_line_breaks_ctcp_markers_and_2000_bytes_arrives_as_safe_split_lines")
    else {
        return;
    };
    let mut alice = Human::connect(&network, "alice");
    alice.join("#nasty");
    alice.join("#victim");
    let _rosey = bot(json!([network.bot_connection("rosey", &["#nasty", "#victim"])]))
        .plugin(python_plugin("nasty", "irc/nasty_reply.py", &[]))
        .start();
    wait_joined(&mut alice, "rosey", "#victim");
    alice.say("#nasty", "!nasty");
    // Anything from the bot after its JOINs, whatever the command: a forged line would be one.
    let from_bot = |l: &Line| l.nick() == "rosey" && l.command != "JOIN";
    // The reply's lines come at the bot's pace (its burst was spent on registering and
    // joining): read up to the last one, the line cut short with "…", then anything after it.
    let mut lines = vec![alice.wait_for("the first reply line", from_bot)];
    while !lines.last().is_some_and(|l| l.text().ends_with('…')) {
        lines.push(alice.wait_for("the reply's next line", from_bot));
    }
    lines.extend(alice.collect_for(Duration::from_secs(1), from_bot));

    assert!(lines.len() >= 2, "2,000 bytes do not fit one line: {lines:#?}");
    for line in &lines {
        assert!(line.is_privmsg("rosey", "#nasty"), "only PRIVMSGs to #nasty, nothing forged: {}", line.raw);
        let untagged =
            line.raw.split_once(' ').filter(|_| line.raw.starts_with('@')).map_or(line.raw.as_str(), |(_, r)| r);
        assert!(untagged.len() + 2 <= 512, "{} bytes: {}", untagged.len() + 2, line.raw);
        assert!(!line.text().contains('\u{1}'), "a CTCP marker reached the wire: {:?}", line.raw);
        assert!(line.utf8, "a line was cut inside a UTF-8 character: {:?}", line.raw);
    }
    let text: String = lines.iter().map(|l| l.text()).collect();
    assert!(text.contains("start") && text.contains("ééé"), "{text}");

    alice.say("#nasty", "!roll 1d2");
    alice.wait_for("a normal reply afterwards", |l| l.is_privmsg("rosey", "#nasty") && l.text().contains("1d2"));
}

#[test]
fn the_prd_appendix_a_config_starts_the_bot() {
    let text = std::fs::read_to_string(fixture("irc/prd-appendix-a.json")).expect("the PRD's Appendix A");
    let mut config: Value = serde_json::from_str(&text).expect("Appendix A is JSON");
    // As written, except the port: 8080 may be taken on a test machine.
    config["dashboard"]["port"] = json!(free_port());
    let mut builder = RoseyBuilder::new();
    builder.config = config;
    let rosey = builder.start();
    assert_eq!(rosey.get("/metrics").status, 200);
    assert!(!rosey.stderr_text().contains("unknown"), "{}", rosey.stderr_text());
}

#[test]
fn the_bot_reconnects_rejoins_and_answers_after_the_server_restarts() {
    let Some((mut network, alice, rosey)) =
        scene("the_bot_reconnects_rejoins_and_answers_after_the_server_restarts", "#again")
    else {
        return;
    };
    drop(alice);
    network.kill_server();
    // What the operator sees during the outage: the connection named, the next try announced.
    wait_for("the log to say the connection is reconnecting", DEADLINE, || {
        rosey.stderr_text().lines().find(|l| l.contains("reconnecting in") && l.contains("local")).map(str::to_owned)
    });
    network.start_server();

    let mut alice = Human::connect(&network, "alice");
    if !alice.join("#again").iter().any(|n| n == "rosey") {
        wait_joined(&mut alice, "rosey", "#again");
    }
    alice.say("#again", "!roll 2d6");
    alice.wait_for("a reply after the restart", |l| l.is_privmsg("rosey", "#again") && l.text().contains("2d6"));
}

/// The bot's SASL password is wrong (given through an environment variable): the log says so,
/// naming the connection and never the password, and the bot backs off instead of hammering
/// the server.
#[test]
fn a_wrong_sasl_password_is_a_clear_error_and_retried_with_backoff() {
    let Some(network) = IrcNetwork::start("a_wrong_sasl_password_is_a_clear_error_and_retried_with_backoff") else {
        return;
    };
    network.register("rosey", "the-right-one").quit();
    let mut connection = network.bot_connection("rosey", &["#sasl"]);
    connection["name"] = json!("libera-ish");
    connection["sasl"] = json!({ "account": "rosey", "password_env": "TEST_IRC_SASL_PASSWORD" });
    let rosey = bot(json!([connection])).env("TEST_IRC_SASL_PASSWORD", "wrong-horse-battery").start();
    let error = wait_for("the SASL failure in the log", DEADLINE, || {
        rosey
            .stderr_text()
            .lines()
            .find(|l| l.contains("libera-ish") && l.to_lowercase().contains("sasl"))
            .map(str::to_owned)
    });
    assert!(error.contains("failed") && error.contains("retrying in"), "{error}");
    let before = network.connections_on(network.ports.plain);
    std::thread::sleep(Duration::from_secs(10));
    let during = network.connections_on(network.ports.plain) - before;
    assert!(during <= 4, "{during} connections in 10 s after {error:?}: a reconnect storm");
    let chat = rosey.get("/api/chat").body;
    for (place, text) in [("log", rosey.stderr_text()), ("/api/chat", chat)] {
        assert!(!text.contains("wrong-horse-battery"), "the password is in the {place}");
    }
}

/// A bot whose connection names `alice` as an admin, in `#ops`. Tests that use it send at most
/// one `!admin` command per 5 s per user (the rate limit) unless the limit is what they test.
fn admin_bot(network: &IrcNetwork, watcher: &mut Human) -> Rosey {
    let mut connection = network.bot_connection("rosey", &["#ops"]);
    connection["admins"] = json!(["alice"]);
    let rosey = bot(json!([connection])).start();
    wait_joined(watcher, "rosey", "#ops");
    rosey.wait_for_state("dice-roller", "RUNNING");
    rosey
}

/// Audit lines in the log that mention `needle`.
fn audited(rosey: &Rosey, needle: &str) -> Vec<String> {
    rosey.stderr_text().lines().filter(|l| l.contains("audit: ") && l.contains(needle)).map(str::to_owned).collect()
}

#[test]
fn the_admins_account_reloads_a_plugin_from_the_channel_and_it_is_audited() {
    let Some(network) = IrcNetwork::start("the_admins_account_reloads_a_plugin_from_the_channel_and_it_is_audited")
    else {
        return;
    };
    let mut alice = network.register("alice", "alice-pw");
    alice.join("#ops");
    let rosey = admin_bot(&network, &mut alice);
    let pid = rosey.pid_of("dice-roller");
    alice.say("#ops", "!admin reload dice-roller");
    let answer = alice.wait_for("the bot's answer", |l| l.command == "PRIVMSG" && l.nick() == "rosey");
    assert_eq!(answer.text(), "alice: reloading dice-roller…", "{}", answer.raw);
    let done = alice.wait_for("the bot's report", |l| l.command == "PRIVMSG" && l.nick() == "rosey");
    assert!(done.text().starts_with("alice: reloaded dice-roller "), "{}", done.raw);
    rosey.wait_for_plugin("a new dice-roller process", "dice-roller", |p| p["state"] == "RUNNING" && p["pid"] != pid);
    let audit = wait_for("the audit line", DEADLINE, || {
        audited(&rosey, "account \"alice\"")
            .into_iter()
            .find(|l| l.contains("action=reload") && l.contains("outcome=reloaded"))
    });
    assert!(audit.contains("dice-roller"), "{audit}");

    // One !admin command per 5 s per user, and the refusal says when to retry.
    alice.say("#ops", "!admin audit");
    let wait = alice.wait_for("the rate limit", |l| l.command == "PRIVMSG" && l.nick() == "rosey");
    let retry_in =
        wait.text().strip_prefix("alice: one !admin command per 5 s; try again in ").and_then(|r| r.strip_suffix(" s"));
    let retry_in: u64 = retry_in.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{}", wait.raw));
    std::thread::sleep(Duration::from_secs(retry_in));

    // The record is queryable from chat too, answered privately.
    alice.say("#ops", "!admin audit");
    let record =
        alice.wait_for("the audit record", |l| l.is_privmsg("rosey", "alice") && l.text().contains("dice-roller"));
    assert!(record.text().contains("alice"), "{}", record.raw);
}

#[test]
fn the_admins_nick_without_the_account_is_refused_and_audited() {
    let Some(network) = IrcNetwork::start("the_admins_nick_without_the_account_is_refused_and_audited") else {
        return;
    };
    network.register("alice", "alice-pw").quit();
    // Anyone may take the nick while alice is away; the server just will not vouch for them.
    let mut impostor = Human::connect(&network, "alice");
    impostor.join("#ops");
    let mut mallory = network.register("mallory", "mallory-pw");
    mallory.join("#ops");
    let rosey = admin_bot(&network, &mut impostor);
    let pid = rosey.pid_of("dice-roller");

    impostor.say("#ops", "!admin reload dice-roller");
    let answer = impostor.wait_for("the bot's refusal", |l| l.command == "PRIVMSG" && l.nick() == "rosey");
    assert!(answer.text().starts_with("alice: ") && answer.text().contains("not logged in"), "{}", answer.raw);
    let audit = wait_for("the refusal's audit line", DEADLINE, || {
        audited(&rosey, "alice").into_iter().find(|l| l.contains("refused"))
    });
    assert!(audit.contains("reload") && audit.contains("no account"), "{audit}");

    // A logged-in account that is not an admin is refused too, by account.
    mallory.say("#ops", "!admin reload dice-roller");
    let answer = mallory
        .wait_for("the refusal for mallory", |l| l.is_privmsg("rosey", "#ops") && l.text().starts_with("mallory: "));
    assert!(answer.text().contains("account mallory is not one"), "{}", answer.raw);
    wait_for("mallory's audit line", DEADLINE, || {
        audited(&rosey, "mallory").into_iter().find(|l| l.contains("refused"))
    });
    assert_eq!(rosey.pid_of("dice-roller"), pid, "the plugin was not reloaded");
}

/// What a broken or hostile server might send; none of it may stop the bot or its connection.
const HOSTILE_SERVER_LINES: &[&[u8]] = &[
    b"\x00\x01\x02 garbage without any structure\r\n",
    b":\r\n",
    b"@\r\n",
    b"@;;=;= :x\r\n",
    b"\r\n",
    b"\n",
    b":fake.server 001\r\n",
    b"PING\r\n",
    b":mallory!m@127.0.0.1 PRIVMSG #chan\r\n",
    b":mallory!m@127.0.0.1 PRIVMSG #chan :\r\n",
    b":mallory!m@127.0.0.1 PRIVMSG\r\n",
    b"PRIVMSG #chan :!roll 1d3 from nobody\r\n",
    b":!@ PRIVMSG #chan :!roll 1d3\r\n",
    b":mallory!m@127.0.0.1 PRIVMSG #chan :\xff\xfe not UTF-8 \xc3\r\n",
    b":mallory!m@127.0.0.1 NOTICE #chan :\x01VERSION\x01\r\n",
];

/// A fake server (a real one would never send garbage): it registers the bot, then sends
/// garbage, a 64 KB line, invalid UTF-8 and PRIVMSGs without text, and then checks that the
/// same connection still answers a PING and a command.
#[test]
fn hostile_server_lines_leave_the_connection_working() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("bound address").port();
    listener.set_nonblocking(true).expect("non-blocking accept");
    let connection = json!({ "name": "fake", "server": "127.0.0.1", "port": port, "tls": false, "nick": "rosey", "channels": ["#chan"] });
    let rosey = bot(json!([connection])).start();
    let (stream, _) = wait_for("the bot to connect", DEADLINE, || listener.accept().ok());
    stream.set_nonblocking(false).expect("blocking socket");
    let mut server = Human::over(stream, "fake-server");
    server.wait_for("USER", |l| l.command == "USER");
    if server
        .next_within(Duration::from_millis(500), |l| l.command == "CAP" && l.params.first().is_some_and(|p| p == "LS"))
        .is_some()
    {
        server.send(":fake.server CAP * LS :message-tags server-time");
        let answer = server.wait_for("CAP REQ or END", |l| {
            l.command == "CAP" && l.params.first().is_some_and(|p| p == "REQ" || p == "END")
        });
        if answer.params[0] == "REQ" {
            server.send(&format!(":fake.server CAP rosey ACK :{}", answer.text()));
            server.wait_for("CAP END", |l| l.command == "CAP" && l.params.first().is_some_and(|p| p == "END"));
        }
    }
    server.send(":fake.server 001 rosey :Welcome to the fake network");
    server.send(":fake.server 376 rosey :End of MOTD");
    server.wait_for("JOIN #chan", |l| l.command == "JOIN");
    server.send(":rosey!rosey@127.0.0.1 JOIN #chan");

    for line in HOSTILE_SERVER_LINES {
        server.send_bytes(line);
    }
    let mut huge = b":mallory!m@127.0.0.1 PRIVMSG #chan :".to_vec();
    huge.extend(std::iter::repeat_n(b'A', 64 * 1024));
    huge.extend(b"\r\n");
    server.send_bytes(&huge);

    server.send("PING :still-there");
    server.wait_for("a PONG on the same connection", |l| l.command == "PONG" && l.raw.contains("still-there"));
    server.send(":alice!alice@127.0.0.1 PRIVMSG #chan :!roll 1d6");
    let reply = server
        .wait_for("the reply to alice", |l| l.command == "PRIVMSG" && l.params.first().is_some_and(|t| t == "#chan"));
    assert!(reply.text().contains("1d6"), "{}", reply.raw);
    rosey.assert_alive();
    assert!(!rosey.stderr_text().contains("panicked"), "{}", rosey.stderr_text());
    assert_eq!(rosey.get("/health").status, 200);
}

/// The bot's pace on the strict port: a burst of 4, then a line every 0.25 s (the server there
/// cuts off anything beyond about twenty lines over five a second; fifty at once would be).
const BURST: usize = 4;
const INTERVAL: f64 = 0.25;

#[test]
fn fifty_commands_at_once_are_all_answered_at_the_bots_pace_without_an_excess_flood() {
    let Some(network) =
        IrcNetwork::start("fifty_commands_at_once_are_all_answered_at_the_bots_pace_without_an_excess_flood")
    else {
        return;
    };
    let mut alice = Human::connect(&network, "alice");
    alice.join("#busy");
    let mut connection = network.bot_connection("rosey", &["#busy"]);
    connection["port"] = json!(network.ports.strict);
    connection["flood_burst"] = json!(BURST);
    connection["flood_interval"] = json!(INTERVAL);
    let rosey = bot(json!([connection])).start();
    wait_joined(&mut alice, "rosey", "#busy");

    let burst: String = (2..=51).map(|sides| format!("PRIVMSG #busy :!roll 1d{sides}\r\n")).collect();
    let sent = std::time::Instant::now();
    alice.send_bytes(burst.as_bytes());
    let mut replies = Vec::new();
    while replies.len() < 50 {
        let line = alice.wait_for_within("the next reply or the bot leaving", Duration::from_secs(30), |l| {
            l.is_privmsg("rosey", "#busy") || (l.command == "QUIT" && l.nick() == "rosey")
        });
        assert_eq!(line.command, "PRIVMSG", "the bot left after {} replies: {}", replies.len(), line.raw);
        replies.push(line);
    }
    for sides in 2..=51 {
        let label = format!("1d{sides}:");
        assert!(replies.iter().any(|r| r.text().contains(&label)), "no answer to !roll 1d{sides}");
    }
    // A line arrives after it was sent, and the bot cannot send the k-th line (k > BURST) sooner
    // than (k - BURST) intervals after the commands came in: a lower bound, safe on a slow machine.
    for (k, reply) in replies.iter().enumerate().skip(BURST) {
        let earliest = INTERVAL * (k + 1 - BURST) as f64 * 0.9;
        let at = reply.at.duration_since(sent).as_secs_f64();
        assert!(at >= earliest, "reply {} arrived {at:.2} s after the commands, before {earliest:.2} s", k + 1);
    }
    let left = alice.collect_for(Duration::from_millis(500), |l| l.command == "QUIT" && l.nick() == "rosey");
    assert!(left.is_empty(), "{left:?}");
    assert!(!rosey.stderr_text().contains("Excess Flood"), "{}", rosey.stderr_text());
}

/// The rules that keep bots from looping and from being abused: a NOTICE is never answered, a
/// CTCP VERSION or PING is (by NOTICE), other CTCP is ignored, and colour codes around a
/// command do not hide it.
#[test]
fn notices_are_never_answered_ctcp_version_is_and_colours_do_not_hide_a_command() {
    let Some((_network, mut alice, _rosey)) =
        scene("notices_are_never_answered_ctcp_version_is_and_colours_do_not_hide_a_command", "#manners")
    else {
        return;
    };
    alice.send("NOTICE #manners :!roll 1d6");
    alice.send("NOTICE rosey :!roll 1d6");
    alice.say("rosey", "\u{1}TIME\u{1}");
    alice.say("#manners", "\u{1}ACTION !roll 1d6\u{1}");
    alice.say("rosey", "\u{1}VERSION\u{1}");
    let version =
        alice.wait_for("the CTCP VERSION answer", |l| l.nick() == "rosey" && l.text().starts_with("\u{1}VERSION"));
    assert_eq!(version.command, "NOTICE", "CTCP is answered by NOTICE: {}", version.raw);
    assert!(
        version.text().len() > "\u{1}VERSION \u{1}".len() && version.text().ends_with('\u{1}'),
        "{:?}",
        version.raw
    );
    alice.say("rosey", "\u{1}PING 1234567\u{1}");
    let ping = alice.wait_for("the CTCP PING answer", |l| l.nick() == "rosey" && l.text().starts_with("\u{1}PING"));
    assert_eq!((ping.command.as_str(), ping.text()), ("NOTICE", "\u{1}PING 1234567\u{1}"), "{}", ping.raw);

    alice.say("#manners", "\u{3}04,01\u{2}!roll\u{2}\u{f} 1d8");
    let reply = alice.wait_for("the reply to the coloured command", |l| l.is_privmsg("rosey", "#manners"));
    assert!(reply.text().contains("1d8"), "{}", reply.raw);
    let answered = alice.collect_for(Duration::from_secs(1), |l| l.nick() == "rosey" && !l.text().starts_with('\u{1}'));
    assert!(answered.is_empty(), "only the PRIVMSG command was answered: {answered:?}");
}

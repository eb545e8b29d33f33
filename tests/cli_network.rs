//! `ratls serve` and `ratls connect` as a user meets them: identifiers that say where they go,
//! refusals that say what to add where, no bond reported that the peer refused, host names,
//! silence told apart from refusal, and JSON output.

mod cli_support;

use std::time::Duration;

use cli_support::{identity, ratls, ratls_in, software_policy, Server};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn identity_says_which_value_goes_where() {
    let dir = tempfile::tempdir().unwrap();
    let out = ratls(dir.path(), &["identity", "me.key"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let (peer_id, digest) = identity(dir.path(), "me.key");
    assert!(
        out.stdout.contains(&format!("--expect {peer_id}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[software]"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("allow = [\"{digest}\"]")),
        "{}",
        out.stdout
    );
}

#[test]
fn client_not_on_the_allow_list_exits_1_without_a_bond_and_is_told_what_to_add_where() {
    let dir = tempfile::tempdir().unwrap();
    let (server_id, server_digest) = identity(dir.path(), "server.key");
    let (client_id, client_digest) = identity(dir.path(), "client.key");
    let (_, other_digest) = identity(dir.path(), "other.key");
    software_policy(dir.path(), "server.toml", &[&other_digest]);
    software_policy(dir.path(), "client.toml", &[&server_digest]);
    let server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--policy",
            "server.toml",
            "--identity",
            "server.key",
        ],
    );
    // No --message and stdin at its end: the exchange itself cannot fail.
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &server.addr,
            "--policy",
            "client.toml",
            "--identity",
            "client.key",
            "--expect",
            &server_id,
        ],
    );
    assert_eq!(client.code, 1, "{}", client.all());
    assert!(!client.stdout.contains("bond with"), "{}", client.all());
    assert!(
        client.stdout.contains("the peer refused us"),
        "{}",
        client.all()
    );
    assert!(
        client
            .stdout
            .contains(&format!("allow = [\"{client_digest}\"]")),
        "the refused client names what to add: {}",
        client.all()
    );
    let served = server.finish(LIMIT);
    assert_eq!(served.code, 1, "{}", served.all());
    assert!(
        served.stdout.contains("refused 127.0.0.1"),
        "{}",
        served.all()
    );
    assert!(
        served.stdout.contains(&format!(
            "server.toml: under [software], allow = [\"{client_digest}\"]"
        )),
        "the refusing server names the digest, not the peer id: {}",
        served.all()
    );
    let advice = served
        .stdout
        .lines()
        .find(|l| l.contains("to admit it"))
        .unwrap();
    assert!(!advice.contains(&client_id), "{advice}");
}

#[test]
fn server_refused_by_the_client_says_it_was_the_refused_side() {
    let dir = tempfile::tempdir().unwrap();
    identity(dir.path(), "server.key");
    let (_, client_digest) = identity(dir.path(), "client.key");
    let (_, other_digest) = identity(dir.path(), "other.key");
    software_policy(dir.path(), "server.toml", &[&client_digest]);
    software_policy(dir.path(), "client.toml", &[&other_digest]);
    let server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--policy",
            "server.toml",
            "--identity",
            "server.key",
        ],
    );
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &server.addr,
            "--policy",
            "client.toml",
            "--identity",
            "client.key",
        ],
    );
    assert_eq!(client.code, 1, "{}", client.all());
    assert!(
        client.stdout.contains("this side refused the peer"),
        "{}",
        client.all()
    );
    assert!(
        client.stdout.contains("client.toml: under [software]"),
        "{}",
        client.all()
    );
    let served = server.finish(LIMIT);
    assert_eq!(served.code, 1, "{}", served.all());
    assert!(
        served.stdout.contains("failed 127.0.0.1"),
        "{}",
        served.all()
    );
    assert!(
        served.stdout.contains("the peer refused us"),
        "{}",
        served.all()
    );
    assert!(
        !served.stdout.contains("refused 127.0.0.1"),
        "{}",
        served.all()
    );
}

#[test]
fn connect_takes_a_host_name_and_json_reports_the_bond_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (server_id, server_digest) = identity(dir.path(), "server.key");
    let (client_id, client_digest) = identity(dir.path(), "client.key");
    software_policy(dir.path(), "server.toml", &[&client_digest]);
    software_policy(dir.path(), "client.toml", &[&server_digest]);
    let mut server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--json",
            "--policy",
            "server.toml",
            "--identity",
            "server.key",
        ],
    );
    let listening: Value = serde_json::from_str(&server.out[0]).unwrap();
    assert_eq!(listening["peer_id"], server_id.as_str());
    assert_eq!(listening["sw_digest"], server_digest.as_str());
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &format!("localhost:{port}"),
            "--json",
            "--message",
            "hi",
            "--policy",
            "client.toml",
            "--identity",
            "client.key",
        ],
    );
    assert_eq!(client.code, 0, "{}", client.all());
    let bond: Value = serde_json::from_str(client.stdout.trim()).unwrap();
    assert_eq!(bond["bonded"], true);
    assert_eq!(bond["peer"]["peer_id"], server_id.as_str());
    assert_eq!(bond["peer"]["level"], "Software");
    assert_eq!(bond["peer"]["profile"], "[software] allow");
    assert_eq!(bond["replies"], serde_json::json!(["hi"]));
    let line = server.next_line(LIMIT).unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "bond");
    assert_eq!(event["peer"]["peer_id"], client_id.as_str());
    assert_eq!(server.finish(LIMIT).code, 0);
}

#[test]
fn connect_to_a_port_nothing_answers_says_no_answer_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "client.key");
    software_policy(dir.path(), "client.toml", &[&digest]);
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let client = ratls_in(
        dir.path(),
        &[
            "connect",
            &addr,
            "--timeout",
            "2",
            "--policy",
            "client.toml",
        ],
        &[],
        LIMIT,
    );
    assert_eq!(client.code, 1, "{}", client.all());
    assert!(client.stdout.contains("no answer from"), "{}", client.all());
    assert!(!client.stdout.contains("refused"), "{}", client.all());
}

#[test]
fn connect_to_a_name_that_does_not_resolve_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = identity(dir.path(), "client.key");
    software_policy(dir.path(), "client.toml", &[&digest]);
    for addr in ["no-such-host.invalid:4433", "localhost", "localhost:port"] {
        let out = ratls(dir.path(), &["connect", addr, "--policy", "client.toml"]);
        assert_eq!(out.code, 2, "{addr}: {}", out.all());
        assert!(
            out.stderr.contains(addr.split(':').next().unwrap()),
            "{}",
            out.all()
        );
    }
}

#[test]
fn bonds_are_logged_with_v_and_not_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (_, server_digest) = identity(dir.path(), "server.key");
    let (_, client_digest) = identity(dir.path(), "client.key");
    software_policy(dir.path(), "server.toml", &[&client_digest]);
    software_policy(dir.path(), "client.toml", &[&server_digest]);
    let server = Server::start(
        dir.path(),
        &[
            "-v",
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--policy",
            "server.toml",
            "--identity",
            "server.key",
        ],
    );
    let client = ratls(
        dir.path(),
        &[
            "connect",
            &server.addr,
            "--policy",
            "client.toml",
            "--identity",
            "client.key",
        ],
    );
    assert_eq!(client.code, 0, "{}", client.all());
    assert!(
        !client.stderr.contains("attested bond established"),
        "{}",
        client.all()
    );
    let served = server.finish(LIMIT);
    assert_eq!(served.code, 0, "{}", served.all());
    for field in [
        "attested bond established",
        "side=\"acceptor\"",
        "level=Software",
        "elapsed_us=",
    ] {
        assert!(served.stderr.contains(field), "{field}: {}", served.all());
    }
}

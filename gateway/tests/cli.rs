//! The `gavel` binary as a user runs it: `gavel token` mints tokens the server's verifier
//! accepts, and `gavel serve` starts, answers `/healthz`, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use gavel_gateway::ingress::auth::{AuthError, JwtKeys};
use gavel_protocol::Role;

const GAVEL: &str = env!("CARGO_BIN_EXE_gavel");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gavel-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn gavel_token(args: &[&str]) -> String {
    let out = Command::new(GAVEL)
        .arg("token")
        .args(args)
        .output()
        .expect("run gavel token");
    assert!(
        out.status.success(),
        "gavel token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn gavel_token_prints_a_token_the_verifier_accepts() {
    let token = gavel_token(&[
        "--sub",
        "alice",
        "--role",
        "coach",
        "--ttl",
        "15m",
        "--jwt-secret",
        "s3cret",
    ]);
    let claims = JwtKeys::new(b"s3cret").verify(&token).expect("valid token");
    assert_eq!(claims.sub.as_str(), "alice");
    assert_eq!(claims.role, Role::Coach);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 890..=now + 910).contains(&claims.exp),
        "ttl of 15m respected"
    );
}

#[test]
fn gavel_token_reads_the_secret_from_the_environment() {
    let out = Command::new(GAVEL)
        .args(["token", "--sub", "bob", "--role", "admin"])
        .env("GAVEL_JWT_SECRET", "from-env")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(JwtKeys::new(b"from-env").verify(token.trim()).is_ok());
}

#[test]
fn a_tampered_token_from_gavel_token_is_refused() {
    let token = gavel_token(&[
        "--sub",
        "alice",
        "--role",
        "seeker",
        "--jwt-secret",
        "s3cret",
    ]);
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 2; // flip a signature character (not the last: base64 padding bits)
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        JwtKeys::new(b"s3cret").verify(&tampered),
        Err(AuthError::BadSignature)
    );
    assert!(
        JwtKeys::new(b"other")
            .verify(&gavel_token(&[
                "--sub",
                "a",
                "--role",
                "admin",
                "--jwt-secret",
                "s3cret"
            ]))
            .is_err()
    );
}

#[test]
fn gavel_token_refuses_bad_arguments() {
    for args in [
        vec!["--sub", "a b", "--role", "coach", "--jwt-secret", "x"],
        vec!["--sub", "alice", "--role", "root", "--jwt-secret", "x"],
        vec![
            "--sub",
            "alice",
            "--role",
            "coach",
            "--ttl",
            "5w",
            "--jwt-secret",
            "x",
        ],
    ] {
        let out = Command::new(GAVEL)
            .arg("token")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should be refused");
        assert!(out.stdout.is_empty());
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn gavel_serve_answers_healthz_shares_its_secret_with_token_and_stops_on_sigterm() {
    let data_dir = temp_dir("serve");
    let mut child = Command::new(GAVEL)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&data_dir)
        .env_remove("GAVEL_JWT_SECRET")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log line `listening` carries the bound address (port 0 picks a free one).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["message"] == "listening" {
            break entry["addr"].as_str().unwrap().to_owned();
        }
    };
    let response = http_get(&addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));

    // No secret configured: one was generated in the data dir, and `gavel token` uses it.
    let secret = std::fs::read(data_dir.join("jwt-secret")).unwrap();
    let token = gavel_token(&[
        "--sub",
        "carol",
        "--role",
        "seeker",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert!(JwtKeys::new(&secret).verify(&token).is_ok());

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "serve should exit cleanly on SIGTERM: {status}"
    );
    std::fs::remove_dir_all(&data_dir).unwrap();
}

#[test]
fn gavel_serve_refuses_a_broken_config_file() {
    let dir = temp_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gavel.toml");
    std::fs::write(&config, "[limits]\ncommand_burst = 0\n").unwrap();
    let out = Command::new(GAVEL)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "x",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("command_burst"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `gavel serve` with `args` (and a throwaway data dir): its failure output.
fn serve_refusal(name: &str, args: &[&str]) -> String {
    let dir = temp_dir(name);
    let out = Command::new(GAVEL)
        .args(["serve", "--jwt-secret", "x", "--data-dir"])
        .arg(&dir)
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{name}: gavel serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_cluster_refuses_to_start_on_sqlite_or_on_an_address_others_cannot_dial() {
    let on_sqlite = serve_refusal(
        "cluster-sqlite",
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ],
    );
    assert!(on_sqlite.contains("--database-url"), "{on_sqlite}");
    let unspecified = serve_refusal(
        "cluster-any",
        &[
            "--listen",
            "0.0.0.0:0",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ],
    );
    assert!(unspecified.contains("--advertise"), "{unspecified}");
}

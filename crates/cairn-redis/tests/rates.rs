//! `RedisRates` against real `redis-server` processes: the rate conformance suite every shared
//! bucket store passes, keys that expire once their bucket is full again and never collide
//! across prefixes, a wrong password refused without being printed, and a Redis that dies:
//! calls fail (never hang, never admit unchecked) and succeed again once it is back.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::config::RedisConfig;
use cairn_core::store::{RateKind, RateStore, RateTake};
use cairn_redis::RedisRates;

/// Environment variable naming the Redis the tests use (`scripts/redis.sh start` prints it).
const REDIS_URL_ENV: &str = "CAIRN_TEST_REDIS_URL";

/// The test Redis, with a key prefix no other test uses.
fn config() -> RedisConfig {
    let url = std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| {
        panic!("{REDIS_URL_ENV} is not set: run the suite with scripts/test.sh, which starts Redis")
    });
    RedisConfig {
        url,
        key_prefix: format!("cairn-test:{}:", uuid::Uuid::new_v4().simple()),
        timeout_ms: 1_000,
        ca_file: None,
    }
}

fn take(now_ms: i64) -> RateTake {
    RateTake { per_minute: 6.0, need: 1.0, take: 1.0, now_ms }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_buckets_pass_the_rate_conformance_suite() {
    let rates = RedisRates::connect(&config()).await.unwrap();
    cairn_store::conformance::rate_buckets(Arc::new(rates) as Arc<dyn RateStore>).await;
}

#[tokio::test]
async fn buckets_expire_once_full_again_and_stay_within_their_prefix() {
    let cfg = config();
    let rates = RedisRates::connect(&cfg).await.unwrap();
    let now = cairn_core::time::now_ms();
    assert_eq!(rates.take_rate("k", RateKind::Requests, take(now)).await.unwrap(), Ok(5.0));
    // One request short of six a minute: full again in ten seconds; kept a minute more.
    let client = redis::Client::open(cfg.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}rate:{{k}}:requests", cfg.key_prefix);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((65_000..=70_000).contains(&ttl), "{ttl} ms");
    // Another deployment on the same Redis has its own buckets.
    let other = RedisRates::connect(&config()).await.unwrap();
    assert_eq!(other.take_rate("k", RateKind::Requests, take(now)).await.unwrap(), Ok(5.0));
    // Giving back to a bucket that expired (reads as full) writes nothing.
    rates.add_rate("absent", RateKind::Tokens, 100.0, 5.0, now).await.unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{}rate:{{absent}}:tokens", cfg.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    // A charge to it does: the bucket owes what the call used beyond its hold.
    rates.add_rate("absent", RateKind::Tokens, 100.0, -150.0, now).await.unwrap();
    let t = RateTake { per_minute: 100.0, need: 0.0, take: 1.0, now_ms: now };
    assert_eq!(rates.take_rate("absent", RateKind::Tokens, t).await.unwrap(), Err(-50.0));
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_never_printed() {
    let mut cfg = config();
    let (scheme, rest) = cfg.url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    cfg.url = format!("{scheme}://:not-the-password-4242@{host}");
    let err = RedisRates::connect(&cfg).await.unwrap_err();
    assert!(!err.contains("not-the-password-4242"), "{err}");
    assert!(err.contains("connecting to Redis at redis://:***@"), "{err}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Redis of this test's own on `port`, so that it can be killed.
fn own_redis(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (scripts/redis.sh installs it)")
}

/// Polls `rates` until a take succeeds (a restarted Redis takes a moment to listen).
async fn until_taken(rates: &RedisRates, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = cairn_core::time::now_ms();
        if let Ok(Ok(_)) = rates.take_rate(key, RateKind::Requests, take(now)).await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no take succeeded on {key}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects to a Redis the test just started, polling until it listens.
async fn connect_once_up(cfg: &RedisConfig) -> RedisRates {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match RedisRates::connect(cfg).await {
            Ok(r) => return r,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_redis_that_dies_fails_calls_and_serves_again_once_back() {
    let port = free_port();
    let mut server = own_redis(port);
    let cfg = RedisConfig { url: format!("redis://127.0.0.1:{port}"), ..config() };
    let rates = connect_once_up(&cfg).await;
    until_taken(&rates, "k").await;
    server.kill().unwrap();
    server.wait().unwrap();
    // Every call fails while it is down: bounded by the timeout, never admitted unchecked.
    for _ in 0..3 {
        let call = rates.take_rate("k", RateKind::Requests, take(cairn_core::time::now_ms()));
        let outcome = tokio::time::timeout(Duration::from_secs(10), call).await.expect("a call hung on a dead Redis");
        assert!(outcome.is_err(), "{outcome:?}");
    }
    assert!(rates.ping_rates().await.is_err());
    let mut back = own_redis(port);
    until_taken(&rates, "k").await;
    rates.ping_rates().await.unwrap();
    let _ = back.kill();
    let _ = back.wait();
    // Nothing listens at all: connecting fails with the reason, within the timeout.
    let err = RedisRates::connect(&cfg).await.unwrap_err();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// Runs the openssl command line in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A private CA and a certificate for 127.0.0.1 it signed, in `dir`.
fn certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=cairn test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

#[tokio::test]
async fn tls_redis_is_reached_through_a_private_ca_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-cert-file", &file("server.pem"), "--tls-key-file", &file("server.key")])
        .args(["--tls-ca-cert-file", &file("ca.pem"), "--tls-auth-clients", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (scripts/redis.sh installs it)");
    let url = format!("rediss://127.0.0.1:{port}");
    let trusted = RedisConfig { url: url.clone(), ca_file: Some(dir.path().join("ca.pem")), ..config() };
    let rates = connect_once_up(&trusted).await;
    let now = cairn_core::time::now_ms();
    assert_eq!(rates.take_rate("k", RateKind::Requests, take(now)).await.unwrap(), Ok(5.0));
    // The system's store does not know the private CA: refused, with the reason.
    let untrusted = RedisConfig { url, ..config() };
    let err = RedisRates::connect(&untrusted).await.unwrap_err();
    assert!(err.contains(&format!("rediss://127.0.0.1:{port}")) && err.contains("UnknownIssuer"), "{err}");
    // A CA file that is not there is named.
    let missing = RedisConfig { ca_file: Some(dir.path().join("nope.pem")), ..trusted };
    assert!(RedisRates::connect(&missing).await.unwrap_err().contains("nope.pem"));
    let _ = server.kill();
    let _ = server.wait();
}

use super::*;

async fn webhook(instance: &[&str], tenants: &[(&str, &[&str])]) -> (Webhook, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_store_for_tests(&dir).await;
    let config = JobsConfig {
        webhook_allowed_hosts: instance.iter().map(|h| h.to_string()).collect(),
        webhook_tenant_hosts: tenants
            .iter()
            .map(|(t, hosts)| (t.to_string(), hosts.iter().map(|h| h.to_string()).collect()))
            .collect(),
        ..JobsConfig::default()
    };
    (Webhook::new(&config, store), dir)
}

async fn cairn_store_for_tests(dir: &tempfile::TempDir) -> Arc<dyn TenantStore> {
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    cairn_store::open(&url, 1).await.unwrap()
}

#[tokio::test]
async fn each_tenant_calls_the_instance_hosts_and_its_own_only() {
    let (w, _d) = webhook(&["hooks.example.com", "127.0.0.1:9000"], &[("acme", &["hooks.acme.com"])]).await;
    assert!(w.validate("acme", &json!({"url": "https://hooks.example.com/x"})).is_ok());
    assert!(w.validate("acme", &json!({"url": "https://hooks.acme.com/x"})).is_ok());
    let refused = w.validate("globex", &json!({"url": "https://hooks.acme.com/x"}));
    assert!(matches!(refused, Err(Refusal::Forbidden(_))), "not another tenant's host: {refused:?}");
    assert!(w.validate("globex", &json!({"url": "http://127.0.0.1:9000/x", "body": [1]})).is_ok());
    for off_list in [json!({"url": "http://127.0.0.1:9001/x"}), json!({"url": "https://evil.example.com/"})] {
        assert!(matches!(w.validate("acme", &off_list), Err(Refusal::Forbidden(_))), "{off_list}");
    }
    for bad in [
        json!({"url": "ftp://hooks.example.com/"}),
        json!({"url": "not a url"}),
        json!({"body": {}}),
        json!({"url": "https://hooks.example.com/", "headers": {"Host": "x"}}),
        json!({"url": "https://hooks.example.com/", "headers": {"Webhook-Signature": "v1,forged"}}),
        json!({"url": "https://hooks.example.com/", "headers": {"X-Cairn-Tenant": "acme"}}),
        json!({"url": "https://hooks.example.com/", "extra": 1}),
    ] {
        assert!(matches!(w.validate("acme", &bad), Err(Refusal::Invalid(_))), "{bad}");
    }
    let (off, _d) = webhook(&[], &[]).await;
    let Err(Refusal::Forbidden(why)) = off.validate("acme", &json!({"url": "https://hooks.example.com/"})) else {
        panic!("webhooks are off")
    };
    assert!(why.contains("off"), "{why}");
}

#[test]
fn signatures_follow_the_standard_webhooks_example() {
    // The test vector published with the Standard Webhooks specification.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert!(sign("whsec_not base64!", "id", 1, b"").is_err());
    assert!(new_secret().starts_with("whsec_") && new_secret() != new_secret());
}

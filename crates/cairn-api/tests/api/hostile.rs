//! Hostile input is refused fast, with bounded memory, never a 5xx or a hang: decompression
//! bombs and page floods in PDFs, JSON Lines files with too many or too long lines, searches
//! over too many collections or with too large a query or filter, a flood of uploads, dates
//! that used to panic, invented HTTP methods in the metrics, metrics read by a tenant,
//! connections that never finish their headers. Each runs in its own process (nextest), so its peak memory is its own.

use std::io::Write;
use std::time::Duration;

use cairn_testkit::{StandIn, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn config(up: &StandIn, extra: &str) -> String {
    format!(
        "[jobs]\npoll_ms = 20\n[server]\nheader_read_timeout_secs = 1\n[knowledge]\nmax_pdf_pages = 5\n\
         max_pdf_inflated_bytes = 1048576\nmax_documents_per_upload = 10\n{extra}\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.emb]\nkind = \"embedding\"\ntargets = [{{ provider = \"up\", model = \"e\" }}]\n",
        up.openai_url()
    )
}

async fn setup(extra: &str) -> (TestServer, StandIn, String, String) {
    let up = StandIn::start().await;
    let s = TestServer::start(&config(&up, extra)).await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, col) = s.post("/v1/collections", &key, &json!({"name": "docs", "embedding_model": "emb"})).await;
    assert_eq!(status, 201, "{col}");
    let col = col["id"].as_str().unwrap().to_owned();
    (s, up, key, col)
}

async fn upload(s: &TestServer, key: &str, col: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let resp = s.client.post(format!("{}/v1/collections/{col}/files", s.base)).bearer_auth(key).multipart(form).send();
    let resp = resp.await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A PDF whose pages' content streams are `contents` (already encoded with `filter`).
fn pdf(contents: &[Vec<u8>], filter: &str) -> Vec<u8> {
    let pages = contents.len();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            (0..pages).map(|i| format!("{} 0 R", 3 + 2 * i)).collect::<Vec<_>>().join(" ")
        )
        .into_bytes(),
    ];
    for (i, c) in contents.iter().enumerate() {
        objects.push(
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R >>", 4 + 2 * i).into_bytes(),
        );
        let mut stream = format!("<< /Length {} {filter} >>\nstream\n", c.len()).into_bytes();
        stream.extend_from_slice(c);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).into_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).into_bytes(),
    );
    out
}

/// `n` bytes of spaces, deflated as they are written: a small stream that inflates to `n`.
fn bomb(n: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..n / block.len() {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap()
}

/// Peak resident memory of this (test) process, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok());
    kb.unwrap_or(0) / 1024
}

#[tokio::test]
async fn hostile_pdfs_are_refused_with_memory_bounded() {
    let (s, _up, key, col) = setup("").await;
    let before = peak_rss_mib();
    // 512 MiB of spaces in well under a megabyte: refused at the 1 MiB inflate bound.
    let (status, body) = upload(&s, &key, &col, "bomb.pdf", pdf(&[bomb(512 << 20)], "/Filter /FlateDecode")).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("inflates"), "{body}");
    // Many small pages, each within bounds: refused on the page count.
    let page = b"BT /F1 12 Tf 72 712 Td (Hello) Tj ET".to_vec();
    let (status, body) = upload(&s, &key, &col, "pages.pdf", pdf(&vec![page; 40], "")).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("pages"), "{body}");
    let grown = peak_rss_mib().saturating_sub(before);
    assert!(grown < 200, "peak memory grew by {grown} MiB");
    // A fine PDF still goes through.
    let fine = include_bytes!("../fixtures/warranty.pdf").to_vec();
    let (status, body) = upload(&s, &key, &col, "fine.pdf", fine).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn hostile_json_lines_are_refused_at_the_line_that_passes_a_bound() {
    let (s, _up, key, col) = setup("").await;
    let lines: String = (0..200_000).map(|i| format!("{{\"text\": \"row {i}\"}}\n")).collect();
    let (status, body) = upload(&s, &key, &col, "rows.jsonl", lines.into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 11"), "refused at the 11th document: {body}");
    let long = format!("{{\"text\": \"{}\"}}\n", "a".repeat(1_000_000));
    let (status, body) = upload(&s, &key, &col, "long.jsonl", long.into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = s.get(&format!("/v1/collections/{col}/documents"), &key).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn hostile_searches_are_refused_before_any_work() {
    let (s, _up, key, col) = setup("").await;
    let search = |body: Value| {
        let s = &s;
        let (key, col) = (key.clone(), col.clone());
        async move { s.post(&format!("/v1/collections/{col}/search"), &key, &body).await }
    };
    let copies: Vec<String> = (0..2000).map(|i| format!("col_{i}")).collect();
    let words = "word ".repeat(20_000);
    let deep = (0..40).fold(json!({"field": "a", "eq": 1}), |f, _| json!({"not": f}));
    let wide = json!({"or": (0..1000).map(|i| json!({"field": "a", "eq": i})).collect::<Vec<_>>()});
    let huge_in = json!({"field": "a", "in": (0..10_000).collect::<Vec<_>>()});
    for (body, param) in [
        (json!({"query": "kettle", "also": copies}), "also"),
        (json!({"query": words}), "query"),
        (json!({"query": "kettle", "filter": deep}), "filter"),
        (json!({"query": "kettle", "filter": wide}), "filter"),
        (json!({"query": "kettle", "filter": huge_in}), "filter"),
        (json!({"query": "kettle", "top_k": 100_000}), "top_k"),
        (json!({"query": "kettle", "filter": {"field": "d", "gte": "2024-01-01T00:00:00+0é00"}}), "filter"),
    ] {
        let (status, e) = search(body).await;
        assert_eq!((status, e["error"]["param"].as_str()), (400, Some(param)), "{e}");
    }
    // The same collection named more than once is searched once.
    let (status, _) = search(json!({"query": "kettle", "also": vec![col.clone(); 5]})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invented_methods_share_one_metric_series() {
    let (s, _up, _key, _col) = setup("").await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        s.client.request(method, format!("{}/v1/models", s.base)).send().await.unwrap();
    }
    let metrics = s.metrics().await;
    assert!(!metrics.contains("BREW"), "an invented method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[tokio::test]
async fn metrics_are_the_instances_not_a_tenants() {
    let (s, _up, member, _col) = setup("").await;
    let admin = s.key("acme", "admin", json!({})).await;
    let read = |key: Option<&str>| {
        let mut req = s.client.get(format!("{}/metrics", s.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // Every tenant's spend is in there: no credentials, a stranger's and a tenant's own keys,
    // its admin's included, are all refused in the error shape.
    let (status, body) = read(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].as_str().unwrap().contains("Bearer"));
    assert_eq!(read(Some("sk-cairn-not-a-key-0000000000000000000000000000")).await.0, 401);
    for key in [&member, &admin] {
        let (status, body) = read(Some(key)).await;
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains("cairn_"), "{body}");
    }
    let (status, body) = read(Some(&s.admin_key)).await;
    assert_eq!(status, 200);
    assert!(body.contains("cairn_http_requests_total"), "{body}");

    // An instance whose port only operators reach may open them.
    let open = TestServer::start("[server]\npublic_metrics = true\n").await;
    let resp = open.client.get(format!("{}/metrics", open.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    let (s, _up, key, _col) = setup("").await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        idle.push(c);
    }
    // Each is closed once the 1 s header timeout passes: reading sees the end of the stream.
    for mut c in idle {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut c, &mut buf)).await;
        let n = read.expect("closed within the header timeout").unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    // The server still answers.
    assert_eq!(s.get("/v1/models", &key).await.0, 200);
}

/// Feeds the body of a slow upload.
type BodyFeed = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;
/// The slow upload's response, once it comes.
type Pending = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Starts an upload whose body arrives only when the returned sender says so: it holds an
/// upload slot meanwhile.
fn slow_upload(s: &TestServer, key: &str, col: &str) -> (BodyFeed, Pending) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let head = "--cairn\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n";
    tx.try_send(Ok(head.as_bytes().to_vec())).unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let request = s
        .client
        .post(format!("{}/v1/collections/{col}/files", s.base))
        .bearer_auth(key)
        .header("content-type", "multipart/form-data; boundary=cairn")
        .body(body)
        .send();
    (tx, tokio::spawn(request))
}

#[tokio::test]
async fn a_flood_of_uploads_waits_at_the_door() {
    let (s, _up, key, col) = setup("max_concurrent_uploads = 1").await;
    let (mut tx, mut slow) = slow_upload(&s, &key, &col);
    // Once the slow upload holds the only slot, the others are refused at once with 429.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = upload(&s, &key, &col, "b.txt", b"Another file.".to_vec()).await;
        if status == 429 && !slow.is_finished() {
            assert_eq!(body["error"]["code"], "rate_limit_exceeded");
            break;
        }
        if slow.is_finished() {
            // It came while a quick one held the slot, and was itself refused: send it again.
            (tx, slow) = slow_upload(&s, &key, &col);
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(Ok(b"Slow text.\r\n--cairn--\r\n".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().status(), 202);
}

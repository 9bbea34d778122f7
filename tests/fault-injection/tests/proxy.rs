//! The proxy on the wire: a tiny upstream hyper server, the proxy in front of it and reqwest
//! (or a raw socket) as the client, so every fault is checked as a client meets it.

use bytes::Bytes;
use fault_injection::{
    is_vault_sys, start, Dialect, Failure, Fault, Handle, Hook, Options, Record, TestPki,
};
use futures::FutureExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    host: Option<String>,
    token: Option<String>,
    user_agent: Option<String>,
    body: String,
}

/// A stand-in server: echoes what it got as JSON, or answers 503 "sealed" once `sealed`.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    sealed: Arc<AtomicBool>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sealed = Arc::new(AtomicBool::new(false));
        let (s, z) = (seen.clone(), sealed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, z) = (s.clone(), z.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (s, z) = (s.clone(), z.clone());
                        async move { Ok::<_, hyper::Error>(answer(req, &s, &z).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, sealed }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    seen: &Mutex<Vec<Seen>>,
    sealed: &AtomicBool,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut s = Seen {
        method: req.method().to_string(),
        target: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        host: header("host"),
        token: header("x-vault-token"),
        user_agent: header("user-agent"),
        body: String::new(),
    };
    let body = req.into_body().collect().await.expect("body").to_bytes();
    s.body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().expect("lock").push(s.clone());
    let (status, body) = if sealed.load(Ordering::SeqCst) {
        (503, json!({ "errors": ["Vault is sealed"] }))
    } else {
        let status = if s.target.starts_with("/created") {
            201
        } else {
            200
        };
        (
            status,
            json!({ "method": s.method, "target": s.target, "body": s.body }),
        )
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-upstream", "yes")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .user_agent("proxy-test/1")
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn proxy(up: &Upstream, dialect: Dialect) -> Handle {
    start(Options::new(up.url(), dialect))
        .await
        .expect("proxy starts")
}

async fn vault_proxy(up: &Upstream) -> Handle {
    let mut opts = Options::new(up.url(), Dialect::Vault);
    opts.exempt = Some(is_vault_sys);
    start(opts).await.expect("proxy starts")
}

/// Status, a header and the body, or the transport error.
async fn get(
    p: &Handle,
    path: &str,
) -> Result<(u16, reqwest::header::HeaderMap, String), reqwest::Error> {
    send(&client(), "GET", &p.url(), path).await
}

async fn send(
    c: &reqwest::Client,
    method: &str,
    base: &str,
    path: &str,
) -> Result<(u16, reqwest::header::HeaderMap, String), reqwest::Error> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let res = c.request(method, format!("{base}{path}")).send().await?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Ok((status, headers, res.text().await?))
}

async fn status(p: &Handle, path: &str) -> u16 {
    get(p, path).await.expect("an answer").0
}

#[tokio::test]
async fn forwards_requests_as_they_came_and_records_them() {
    let up = Upstream::start().await;
    let p = vault_proxy(&up).await;
    let res = client()
        .post(format!("{}/created/a?version=2&x=%2F", p.url()))
        .header("X-Vault-Token", "s.secret")
        .header("X-Vault-Request", "true")
        .body(r#"{"data":{"k":"v"}}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["x-upstream"], "yes");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["target"], "/created/a?version=2&x=%2F");
    assert_eq!(body["body"], r#"{"data":{"k":"v"}}"#);

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].host.as_deref(), Some(up.addr.to_string().as_str()));
    assert_eq!(seen[0].token.as_deref(), Some("s.secret"));
    assert_eq!(seen[0].user_agent.as_deref(), Some("proxy-test/1"));

    assert_eq!(status(&p, "/v1/sys/health?standbyok=true").await, 200);
    let records = p.records();
    assert_eq!(records.len(), 2);
    let Record {
        method,
        path,
        status: st,
        user_agent,
        faulted,
        ..
    } = &records[0];
    assert_eq!(
        (
            method.as_str(),
            path.as_str(),
            *st,
            user_agent.as_deref(),
            *faulted
        ),
        (
            "POST",
            "/created/a?version=2&x=%2F",
            Some(201),
            Some("proxy-test/1"),
            false
        )
    );
    assert_eq!(records[1].status, Some(200));
    assert_eq!(
        p.requests(),
        vec![
            ("POST".into(), "/created/a?version=2&x=%2F".into()),
            ("GET".into(), "/v1/sys/health?standbyok=true".into())
        ]
    );
    let at = p.requests_at();
    assert!(at[0].0 <= at[1].0);
    assert_eq!(
        (at[1].1.as_str(), at[1].2.as_str()),
        ("GET", "/v1/sys/health?standbyok=true")
    );
    assert_eq!(p.request_count(), 2);
    p.reset_requests();
    assert_eq!(p.request_count(), 0);
    assert!(p.requests().is_empty());
    assert_eq!(status(&p, "/v1/x").await, 200);
    assert_eq!(p.requests(), vec![("GET".into(), "/v1/x".into())]);
    let taken = p.take_records();
    assert_eq!(
        (taken.len(), taken[0].path.as_str(), taken[0].status),
        (1, "/v1/x", Some(200))
    );
    assert_eq!(p.request_count(), 0, "taking forgets");
    assert_eq!(status(&p, "/v1/y").await, 200);
    assert_eq!(p.requests(), vec![("GET".into(), "/v1/y".into())]);
}

/// Reads one HTTP/1.1 response with a Content-Length body off a raw socket.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.expect("read");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("ascii head");
    let code = head[9..12].parse().expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .expect("content-length");
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.expect("body");
    (code, String::from_utf8(body).expect("utf-8"))
}

#[tokio::test]
async fn keeps_client_connections_alive_across_requests_and_injected_answers() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::FailNext {
        count: 1,
        status: 503,
    }));
    let mut s = TcpStream::connect(p.addr()).await.expect("connect");
    for (path, want) in [("/a", 503), ("/b", 200), ("/c", 200)] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        assert_eq!(read_response(&mut s).await.0, want, "{path}");
    }
    let targets: Vec<String> = up.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/b", "/c"]);
}

#[tokio::test]
async fn status_answers_the_vault_error_body_unforwarded_and_spares_exempt_paths() {
    let up = Upstream::start().await;
    let p = vault_proxy(&up).await;
    p.set_fault(Some(Fault::Status(503)));
    let (code, headers, body) = get(&p, "/v1/secret/data/a").await.expect("answer");
    assert_eq!(code, 503);
    assert_eq!(body, "{\"errors\":[\"injected\"]}\n");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(up.count(), 0, "not forwarded");
    assert_eq!(status(&p, "/v1/sys/health").await, 200, "exempt");
    assert_eq!(status(&p, "/v1/%73ys/seal-status").await, 200, "exempt");
    assert_eq!(status(&p, "/v1/system").await, 503);
    assert_eq!(up.count(), 2);
    let faulted: Vec<bool> = p.records().iter().map(|r| r.faulted).collect();
    assert_eq!(faulted, [true, false, false, true]);
    assert_eq!(p.fault(), Some(Fault::Status(503)));
    p.set_fault(None);
    assert_eq!(status(&p, "/v1/secret/data/a").await, 200);
}

#[tokio::test]
async fn kubernetes_dialect_answers_apiserver_statuses_and_throttles_with_retry_after() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Kubernetes).await;
    p.set_fault(Some(Fault::Always(Failure::Throttle { retry_after: 3 })));
    let (code, headers, body) = get(&p, "/api/v1/namespaces/ns/secrets")
        .await
        .expect("answer");
    assert_eq!(code, 429);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"injected: too many requests","reason":"TooManyRequests",
            "details":{"retryAfterSeconds":3},"code":429})
    );

    p.set_fault(Some(Fault::Status(409)));
    let (code, headers, body) = get(&p, "/api/v1/namespaces/ns/secrets/s")
        .await
        .expect("answer");
    assert_eq!(code, 409);
    assert!(headers.get("retry-after").is_none());
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["reason"], "Conflict");
    assert_eq!(body["code"], 409);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("the object has been modified")));
    assert!(body.get("details").is_none());

    p.set_fault(Some(Fault::Status(500)));
    let body: Value =
        serde_json::from_str(&get(&p, "/api").await.expect("answer").2).expect("json");
    assert_eq!(
        (body["reason"].as_str(), body["message"].as_str()),
        (
            Some("InternalError"),
            Some("injected: Internal error occurred")
        )
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn vault_dialect_throttle_carries_retry_after() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::Next {
        count: 1,
        failure: Failure::Throttle { retry_after: 7 },
    }));
    let (code, headers, body) = get(&p, "/v1/secret/data/a").await.expect("answer");
    assert_eq!(
        (code, body.as_str()),
        (429, "{\"errors\":[\"injected\"]}\n")
    );
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(p.fault(), None, "spent");
    assert_eq!(status(&p, "/v1/secret/data/a").await, 200);
}

#[tokio::test]
async fn reset_closes_without_an_answer_and_forwards_nothing() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::Always(Failure::Reset)));
    let err = get(&p, "/v1/secret/data/a").await.expect_err("reset");
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(up.count(), 0);
    let r = &p.records()[0];
    assert_eq!((r.status, r.faulted), (None, true));

    // On a raw socket: the connection ends without a byte of response.
    let mut s = TcpStream::connect(p.addr()).await.expect("connect");
    s.write_all(b"GET /x HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn lost_response_is_served_upstream_but_the_client_gets_an_error() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::Next {
        count: 1,
        failure: Failure::LostResponse,
    }));
    let c = client();
    let err = c
        .put(format!("{}/v1/secret/data/a", p.url()))
        .body("{\"data\":{}}")
        .send()
        .await
        .expect_err("lost");
    assert!(!err.is_timeout(), "{err}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "served upstream");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body.as_str()),
        ("PUT", "{\"data\":{}}")
    );
    assert_eq!(p.records()[0].status, None);
    assert_eq!(status(&p, "/v1/secret/data/a").await, 200, "cleared");
}

#[tokio::test]
async fn delay_forwards_late_and_a_hang_outlasts_an_impatient_client() {
    let up = Upstream::start().await;
    let p = vault_proxy(&up).await;
    // Long enough that the exempt request's "faster than the delay" holds on a loaded machine
    // (one took 828 ms beside a full test run).
    let delay = Duration::from_secs(3);
    p.set_fault(Some(Fault::Delay(delay)));
    let started = Instant::now();
    assert_eq!(status(&p, "/v1/secret/data/a").await, 200);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(status(&p, "/v1/sys/health").await, 200);
    assert!(started.elapsed() < delay, "exempt: {:?}", started.elapsed());
    assert!(p.records()[0].faulted && !p.records()[1].faulted);

    p.set_fault(Some(Fault::Always(Failure::Hang(Duration::from_millis(
        400,
    )))));
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let err = send(&impatient, "GET", &p.url(), "/v1/secret/data/slow")
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert!(!up.seen().iter().any(|s| s.target == "/v1/secret/data/slow"));
    // The client gave up; the request still reaches the server once the hang is over.
    eventually(
        || up.seen().iter().any(|s| s.target == "/v1/secret/data/slow"),
        "the hung request is served",
    )
    .await;
}

#[tokio::test]
async fn kill_after_serves_then_loses_one_answer_then_resets_for_good() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::KillAfter {
        ok: 2,
        served: true,
    }));
    assert_eq!(status(&p, "/1").await, 200);
    assert_eq!(status(&p, "/2").await, 200);
    assert!(get(&p, "/3").await.is_err(), "lost");
    assert_eq!(up.count(), 3, "the lost one was served");
    for path in ["/4", "/5"] {
        assert!(get(&p, path).await.is_err(), "reset");
    }
    assert_eq!(up.count(), 3, "resets are not served");
    let statuses: Vec<Option<u16>> = p.records().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), Some(200), None, None, None]);

    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::KillAfter {
        ok: 1,
        served: false,
    }));
    assert_eq!(status(&p, "/1").await, 200);
    assert!(get(&p, "/2").await.is_err());
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn fail_after_forwards_ok_requests_then_fails_every_one() {
    let up = Upstream::start().await;
    let p = vault_proxy(&up).await;
    p.set_fault(Some(Fault::FailAfter { ok: 2, status: 503 }));
    assert_eq!(status(&p, "/v1/a").await, 200);
    assert_eq!(
        status(&p, "/v1/sys/health").await,
        200,
        "exempt, not counted"
    );
    assert_eq!(status(&p, "/v1/b").await, 200);
    for _ in 0..3 {
        assert_eq!(status(&p, "/v1/c").await, 503);
    }
    assert_eq!(up.count(), 3);
    assert_eq!(p.fault(), Some(Fault::FailAfter { ok: 0, status: 503 }));
}

#[tokio::test]
async fn fail_next_fails_count_requests_then_clears() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::FailNext {
        count: 2,
        status: 500,
    }));
    assert_eq!(status(&p, "/a").await, 500);
    assert_eq!(
        p.fault(),
        Some(Fault::FailNext {
            count: 1,
            status: 500
        })
    );
    assert_eq!(status(&p, "/a").await, 500);
    assert_eq!(p.fault(), None);
    assert_eq!(status(&p, "/a").await, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn hook_after_runs_once_before_the_request_and_holds_concurrent_ones() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    let runs = Arc::new(AtomicU32::new(0));
    let seen_by_hook = Arc::new(Mutex::new(None));
    // The hook seals the upstream only once the test lets it, so the test controls what
    // arrives while it runs.
    let release = Arc::new(tokio::sync::Notify::new());
    let hook: Hook = {
        let (runs, seen, sealed, by_hook, release) = (
            runs.clone(),
            up.seen.clone(),
            up.sealed.clone(),
            seen_by_hook.clone(),
            release.clone(),
        );
        Arc::new(move || {
            let (runs, seen, sealed, by_hook, release) = (
                runs.clone(),
                seen.clone(),
                sealed.clone(),
                by_hook.clone(),
                release.clone(),
            );
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                *by_hook.lock().expect("lock") = Some(seen.lock().expect("lock").len());
                release.notified().await;
                sealed.store(true, Ordering::SeqCst);
            }
            .boxed()
        })
    };
    p.set_fault(Some(Fault::HookAfter {
        ok: 1,
        hook: hook.clone(),
    }));
    assert_eq!(
        p.fault(),
        Some(Fault::HookAfter {
            ok: 1,
            hook: hook.clone()
        })
    );
    assert_eq!(status(&p, "/1").await, 200);
    let (p2, p3) = (p.clone(), p.clone());
    let second = tokio::spawn(async move { status(&p2, "/2").await });
    eventually(|| runs.load(Ordering::SeqCst) == 1, "the hook runs").await;
    let third = tokio::spawn(async move { status(&p3, "/3").await });
    eventually(|| p.request_count() == 3, "/3 arrives").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        up.count(),
        1,
        "neither /2 nor /3 forwarded while the hook runs"
    );
    release.notify_one();
    assert_eq!(second.await.expect("task"), 503, "forwarded after the hook");
    assert_eq!(
        third.await.expect("task"),
        503,
        "held until the hook was done"
    );
    assert_eq!(
        *seen_by_hook.lock().expect("lock"),
        Some(1),
        "before /2 was forwarded"
    );
    assert_eq!(up.count(), 3);
    assert_eq!(p.fault(), None, "cleared");
    assert_eq!(status(&p, "/4").await, 503);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "once");
    let faulted: Vec<bool> = p.records().iter().map(|r| r.faulted).collect();
    assert_eq!(faulted, [false, true, false, false]);
}

/// Waits (up to 5 s) until `cond` holds.
async fn eventually(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn garbage_answers_only_on_its_prefix() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::Garbage {
        path_prefix: "/v1/secret/data/apps/".into(),
        status: 200,
        body: "<html>oops",
    }));
    let (code, headers, body) = get(&p, "/v1/secret/data/apps/db").await.expect("answer");
    assert_eq!((code, body.as_str()), (200, "<html>oops"));
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("x-upstream").is_none(), "not forwarded");
    let (code, headers, _) = get(&p, "/v1/secret/data/billing/db").await.expect("answer");
    assert_eq!(code, 200);
    assert_eq!(headers["x-upstream"], "yes");
    assert_eq!(up.count(), 1);
    assert!(p.fault().is_some(), "stays until cleared");
}

#[tokio::test]
async fn set_fault_for_meets_only_that_method() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Kubernetes).await;
    p.set_fault_for(
        Some("PATCH"),
        Some(Fault::Next {
            count: 1,
            failure: Failure::Status(409),
        }),
    );
    let c = client();
    assert_eq!(send(&c, "GET", &p.url(), "/s").await.expect("ok").0, 200);
    assert_eq!(send(&c, "PATCH", &p.url(), "/s").await.expect("ok").0, 409);
    assert_eq!(send(&c, "PATCH", &p.url(), "/s").await.expect("ok").0, 200);
    assert_eq!(p.fault(), None);
    let methods: Vec<String> = up.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["GET", "PATCH"]);
    // set_fault lifts the method filter.
    p.set_fault(Some(Fault::Status(500)));
    assert_eq!(send(&c, "GET", &p.url(), "/s").await.expect("ok").0, 500);
}

#[tokio::test]
async fn random_repeats_its_sequence_for_a_seed() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    let fault = Fault::Random {
        percent: 50,
        seed: 42,
        failures: vec![Failure::Status(500), Failure::Status(502)],
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        p.set_fault(Some(fault.clone()));
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(status(&p, "/r").await);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    for code in [200, 500, 502] {
        assert!(runs[0].contains(&code), "{code} in {:?}", runs[0]);
    }
    assert_ne!(p.fault(), Some(fault), "the seed advanced");
}

#[tokio::test]
async fn concurrent_requests_each_take_one_turn_of_a_counting_fault() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    p.set_fault(Some(Fault::FailNext {
        count: 5,
        status: 503,
    }));
    let c = client();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (c, url) = (c.clone(), p.url());
            tokio::spawn(async move { send(&c, "GET", &url, &format!("/p/{i}")).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task").expect("answer").0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 503).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 11, "{codes:?}");
    assert_eq!(up.count(), 11);
    assert_eq!(p.request_count(), 16);
    assert!(p.records().iter().all(|r| r.status.is_some()));
}

#[tokio::test]
async fn unreachable_upstream_answers_502_in_the_dialect() {
    // A port nothing listens on: bind, note it, close.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let p = start(Options::new(url.clone(), Dialect::Vault))
        .await
        .expect("start");
    let (code, _, body) = get(&p, "/v1/a").await.expect("answer");
    assert_eq!(code, 502);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert!(
        body["errors"][0]
            .as_str()
            .is_some_and(|m| m.contains("unreachable")),
        "{body}"
    );
    assert_eq!(p.records()[0].status, Some(502));

    let p = start(Options::new(url, Dialect::Kubernetes))
        .await
        .expect("start");
    let (code, _, body) = get(&p, "/api").await.expect("answer");
    assert_eq!(code, 502);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (body["kind"].as_str(), body["code"].as_u64()),
        (Some("Status"), Some(502))
    );
}

#[tokio::test]
async fn serves_tls_to_clients_that_trust_the_test_ca() {
    let up = Upstream::start().await;
    let pki = TestPki::generate("proxy test CA", &["127.0.0.1", "localhost"]).expect("pki");
    let mut opts = Options::new(up.url(), Dialect::Vault);
    opts.tls = Some(pki.server.clone());
    let p = start(opts).await.expect("start");
    assert!(p.url().starts_with("https://127.0.0.1:"), "{}", p.url());
    let _ = client();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(pki.ca_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let (code, _, _) = send(&trusting, "GET", &p.url(), "/v1/a")
        .await
        .expect("answer");
    assert_eq!(code, 200);
    p.set_fault(Some(Fault::Status(503)));
    assert_eq!(
        send(&trusting, "GET", &p.url(), "/v1/a")
            .await
            .expect("answer")
            .0,
        503
    );
    p.set_fault(None);

    let other = TestPki::generate("another CA", &["127.0.0.1"]).expect("pki");
    let distrusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(other.ca_pem.as_bytes()).expect("pem"),
        )
        .build()
        .expect("client");
    assert!(send(&distrusting, "GET", &p.url(), "/v1/b").await.is_err());
    assert_eq!(up.count(), 1, "nothing passes a failed handshake");
    assert_eq!(p.request_count(), 2);
}

#[tokio::test]
async fn stop_listening_refuses_connections_and_start_listening_serves_the_same_port() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    let addr = p.addr();
    // A keep-alive connection open across the stop is dropped too.
    let mut open = TcpStream::connect(addr).await.expect("connect");
    open.write_all(b"GET /a HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_response(&mut open).await.0, 200);

    p.stop_listening().await;
    let err = get(&p, "/b").await.expect_err("refused");
    assert!(err.is_connect(), "{err}");
    assert!(TcpStream::connect(addr).await.is_err(), "refused");
    let mut rest = Vec::new();
    let n = open.read_to_end(&mut rest).await.unwrap_or(0);
    assert_eq!(n, 0, "the open connection was closed");
    p.stop_listening().await;

    p.start_listening().await.expect("listens again");
    p.start_listening().await.expect("no-op while listening");
    assert_eq!(p.addr(), addr);
    assert_eq!(status(&p, "/c").await, 200);
    assert_eq!(
        p.requests(),
        vec![("GET".into(), "/a".into()), ("GET".into(), "/c".into())]
    );
    p.clone().shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err(), "shut down");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_listener() {
    let up = Upstream::start().await;
    let p = proxy(&up, Dialect::Vault).await;
    let addr = p.addr();
    let clone = p.clone();
    drop(p);
    assert_eq!(status(&clone, "/a").await, 200, "a clone keeps it running");
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What was listening is gone: a new listener can take the port.
    TcpListener::bind(addr).await.expect("the port is free");
}

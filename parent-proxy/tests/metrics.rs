//! `GET /metrics` through the real router, with a SQLite store in a temp dir and either no
//! enclave at all or a tiny fake enclave speaking the protocol; and every route of
//! `strongroom_api` reaching its handler through the router's own patterns.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode};
use strongroom_api::{ApiErrorCode, Id, ProxyRoute, Route};
use strongroom_protocol::messages::{
    Answer, CreatedKey, Effects, KeyInfo, Request, Response as EnclaveResponse,
};
use strongroom_protocol::{Address, Connection, Incoming};
use strongroom_proxy::enclave_client::EnclaveClient;
use strongroom_proxy::http::{AppState, router};
use strongroom_proxy::metrics::Metrics;
use strongroom_proxy::unseal::Health;
use strongroom_store::{SqliteStore, Store};
use tower::ServiceExt;

const KEY_ID: &str = "0123456789abcdef0123456789abcdef";

async fn app(dir: &Path, socket: &Path) -> axum::Router {
    let store = SqliteStore::open(&dir.join("db.sqlite")).unwrap();
    store
        .apply(Effects {
            key_created: Some(CreatedKey {
                info: KeyInfo {
                    id: KEY_ID.into(),
                    label: "l".into(),
                    curve: "secp256k1".into(),
                    public_key: vec![4; 65].into(),
                    address: "0x".into(),
                    created_at: 1,
                },
                sealed: b"sealed".to_vec().into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let enclave = EnclaveClient::new(Address::Unix(socket.to_path_buf()), 2)
        .with_metrics(Arc::clone(&metrics));
    router(AppState {
        enclave: Arc::new(enclave),
        store: Arc::new(store),
        health: Arc::new(Health::default()),
        metrics,
        audit: Arc::default(),
        rpc_tokens: None,
        replica: None,
    })
}

async fn send(app: &axum::Router, method: &str, uri: &str, body: &str) -> StatusCode {
    let request = HttpRequest::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn every_route_reaches_its_handler() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &dir.path().join("nobody-listens.sock")).await;
    // Relayed: with no enclave to ask, the relay answers `not_ready` (the router's fallback
    // would answer 404, a pattern without the method 405).
    for route in Route::every(&Id::new(KEY_ID).unwrap()) {
        let request = HttpRequest::builder()
            .method(route.method())
            .uri(route.path())
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (status.as_u16(), json["error"]["code"].as_str()),
            (503, Some(ApiErrorCode::NotReady.as_str())),
            "{route:?}: {json}"
        );
    }
    for route in ProxyRoute::ALL {
        let status = send(&app, route.method(), route.path(), "").await;
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{route:?}: {status}"
        );
    }
}

async fn scrape(app: &axum::Router) -> String {
    let request = HttpRequest::get("/metrics").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"));
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn requests_are_counted_under_route_templates() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &dir.path().join("nobody-listens.sock")).await;

    let sign = format!("/v1/keys/{KEY_ID}/sign/message");
    assert_eq!(
        send(&app, "POST", &sign, "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&app, "GET", "/no/such/thing/123", "").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, "GET", "/v1/health", "").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let text = scrape(&app).await;
    assert!(
        text.contains(
            r#"strongroom_http_requests_total{method="POST",route="/v1/keys/{id}/sign/{kind}",status="503"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"strongroom_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"strongroom_http_requests_total{method="GET",route="/v1/health",status="503"} 1"#
    ));
    assert!(text.contains(
        r#"strongroom_http_request_duration_seconds_count{route="/v1/keys/{id}/sign/{kind}"} 1"#
    ));
    assert!(
        text.contains(
            r#"strongroom_http_request_duration_seconds_bucket{le="+Inf",route="unmatched"} 1"#
        ) || text.contains(
            r#"strongroom_http_request_duration_seconds_bucket{route="unmatched",le="+Inf"} 1"#
        ),
        "{text}"
    );
    assert!(!text.contains(KEY_ID), "raw paths must not become labels");
    assert!(text.contains(r#"strongroom_enclave_errors_total{kind="connect"} 1"#));
    assert!(text.contains("strongroom_enclave_ready 0"));
    // Families with no series yet are left out of the exposition.
    assert!(!text.contains("strongroom_decisions_total"));
}

/// Answers every `Call` with a denial carrying a decision, and a top-level decision for
/// `DELETE`.
async fn fake_enclave(listener: tokio::net::UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut conn = Connection::new(stream);
            while let Ok(Incoming::Request(envelope)) = conn.recv_request::<Request>().await {
                let answer = match envelope.body {
                    Request::Call(call) if call.method == "DELETE" => Answer {
                        status: 200,
                        body: br#"{"id":"x","destroyed":true,"decision":{"result":"allow","rule":"admins","reason":"r"}}"#
                            .to_vec()
                            .into(),
                        effects: Effects::default(),
                        signature: None,
                    },
                    Request::Call(_) => Answer {
                        status: 403,
                        body: br#"{"error":{"code":"denied","message":"m","decision":{"result":"deny","rule":null,"reason":"default deny"}}}"#
                            .to_vec()
                            .into(),
                        effects: Effects::default(),
                        signature: None,
                    },
                    _ => return,
                };
                let reply = EnclaveResponse::Answer(answer);
                if conn.respond(envelope.request_id, &reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test]
async fn decisions_and_round_trips_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(fake_enclave(listener));
    let app = app(dir.path(), &socket).await;

    let sign = format!("/v1/keys/{KEY_ID}/sign/message");
    assert_eq!(send(&app, "POST", &sign, "{}").await, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, "POST", &sign, "{}").await, StatusCode::FORBIDDEN);
    let key = format!("/v1/keys/{KEY_ID}");
    assert_eq!(send(&app, "DELETE", &key, "").await, StatusCode::OK);

    let text = scrape(&app).await;
    assert!(
        text.contains(r#"strongroom_decisions_total{result="deny",rule=""} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"strongroom_decisions_total{result="allow",rule="admins"} 1"#));
    assert!(text.contains(
        r#"strongroom_http_requests_total{method="POST",route="/v1/keys/{id}/sign/{kind}",status="403"} 2"#
    ));
    assert!(text.contains(
        r#"strongroom_http_requests_total{method="DELETE",route="/v1/keys/{id}",status="200"} 1"#
    ));
    assert!(
        text.contains(r#"strongroom_enclave_round_trip_seconds_count{request="Call"} 3"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_in_the_json_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &dir.path().join("no-enclave.sock")).await;
    let body = format!("{{\"label\": \"{}\"}}", "x".repeat(300 * 1024));
    let request = HttpRequest::builder()
        .method("POST")
        .uri("/v1/keys")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["error"]["code"], "too_large");
}

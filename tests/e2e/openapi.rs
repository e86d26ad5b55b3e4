//! `docs/openapi.json` against the code and the running system: its paths and methods are
//! exactly the proxy's routes (`parent-proxy/src/http.rs`) expanded by the enclave's
//! (`strongroom_api::Route`), and the JSON bodies a real stack answers validate against the
//! documented response schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom_e2e::{Stack, repo, temp_data};

fn spec() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn source(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

/// Every documented operation as (method, path).
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Whether a concrete (documented) path fits a route template: equal segments, or any
/// segment where the template has a `{parameter}`.
fn fits(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}

/// The proxy's routes as (method, template, handler), from the `.route("…", …)` lines.
fn proxy_routes() -> Vec<(String, String, String)> {
    let mut routes = Vec::new();
    for line in source("parent-proxy/src/http.rs").lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else {
            continue;
        };
        let (template, handlers) = rest.split_once('"').unwrap();
        for method in ["get", "post", "delete", "put", "patch"] {
            let mut at = 0;
            while let Some(i) = handlers[at..].find(&format!("{method}(")) {
                let start = at + i;
                let before = handlers[..start].chars().last();
                at = start + method.len() + 1;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let handler: String = handlers[at..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                routes.push((method.to_uppercase(), template.to_string(), handler));
            }
        }
    }
    assert!(routes.len() >= 10, "parsed too few routes: {routes:?}");
    routes
}

/// The enclave's routes as (method, path with `{id}` for variables), the sign kinds
/// expanded.
fn enclave_routes() -> BTreeSet<(String, String)> {
    let id = strongroom_api::Id::new("0123456789abcdef").unwrap();
    strongroom_api::Route::every(&id)
        .iter()
        .map(|r| (r.method().to_string(), r.template()))
        .collect()
}

#[test]
fn documented_paths_are_exactly_the_served_routes() {
    let spec = spec();
    let docs = documented(&spec);
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/v1/health"),
        ("GET", "/v1/attestation"),
        ("POST", "/v1/keys"),
        ("GET", "/v1/keys"),
        ("GET", "/v1/keys/{id}"),
        ("DELETE", "/v1/keys/{id}"),
        ("POST", "/v1/keys/{id}/sign/transaction"),
        ("POST", "/v1/keys/{id}/sign/typed-data"),
        ("POST", "/v1/keys/{id}/sign/message"),
        ("POST", "/v1/keys/{id}/sign/digest"),
        ("GET", "/v1/policy"),
        ("POST", "/v1/policy/proposals"),
        ("GET", "/v1/policy/proposals"),
        ("GET", "/v1/policy/proposals/{id}"),
        ("POST", "/v1/policy/proposals/{id}/approve"),
        ("POST", "/v1/policy/proposals/{id}/cancel"),
        ("GET", "/v1/requests"),
        ("GET", "/v1/requests/{id}"),
        ("POST", "/v1/requests/{id}/approve"),
        ("POST", "/v1/requests/{id}/execute"),
        ("POST", "/v1/requests/{id}/cancel"),
        ("GET", "/metrics"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/audit/head"),
        ("POST", "/rpc"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(docs, expected);

    let proxy = proxy_routes();
    let enclave = enclave_routes();
    for (method, path) in &docs {
        let route = proxy.iter().find(|(m, t, _)| m == method && fits(t, path));
        let Some((_, template, handler)) = route else {
            panic!("{method} {path} is documented but the proxy has no such route");
        };
        if handler == "relay" {
            assert!(
                enclave.contains(&(method.clone(), path.clone())),
                "{method} {path} is relayed by the proxy ({template}) but the enclave does not answer it"
            );
        }
    }
    for (method, template, _) in &proxy {
        assert!(
            docs.iter().any(|(m, p)| m == method && fits(template, p)),
            "the proxy serves {method} {template}, which docs/openapi.json does not document"
        );
    }
    for (method, path) in &enclave {
        assert!(
            docs.contains(&(method.clone(), path.clone())),
            "the enclave answers {method} {path}, which docs/openapi.json does not document"
        );
    }
    // Every POST and DELETE carries the stamp (JSON-RPC: or a bearer token); no GET does.
    for (method, path) in &docs {
        let op = &spec["paths"][path.as_str()][method.to_lowercase()];
        let expected = match (method.as_str(), path.as_str()) {
            ("GET", _) => json!([]),
            (_, "/rpc") => json!([{"stamp": []}, {"bearer": []}]),
            _ => json!([{"stamp": []}]),
        };
        assert_eq!(op["security"], expected, "{method} {path}: security");
    }
}

/// Validates `body` against the documented schema of (`method`, `path`, `status`).
fn check(spec: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let errors = problems(spec, method, path, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: body does not match docs/openapi.json: {errors:#?}\nbody: {body:#}"
    );
}

fn problems(spec: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let op = &spec["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut response = &op["responses"][status.to_string()];
    if let Some(r) = response["$ref"].as_str() {
        response = spec.pointer(r.strip_prefix('#').unwrap()).unwrap();
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: no JSON schema for status {status}"
    );
    let mut root = schema.as_object().unwrap().clone();
    root.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    root.insert("components".into(), spec["components"].clone());
    let validator = jsonschema::validator_for(&Value::Object(root)).unwrap();
    validator
        .iter_errors(body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// A plain HTTP/1.1 request on its own connection; returns the status and the JSON body.
fn http(url: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    http_with(url, method, path, body, &[])
}

/// [`http`] with extra request headers.
fn http_with(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let host = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let payload = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if body.is_some() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&payload).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut content = raw[split + 4..].to_vec();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if head.contains("transfer-encoding: chunked") {
        content = dechunk(&content);
    }
    let json = serde_json::from_slice(&content).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {status} body is not JSON ({e}): {}",
            String::from_utf8_lossy(&content)
        )
    });
    (status, json)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// GETs `path` (concrete) and checks the answer against `documented` (the template).
fn get_checked(stack: &Stack, spec: &Value, path: &str, documented: &str, status: u16) -> Value {
    let (got, body) = http(&stack.url, "GET", path, None);
    assert_eq!(got, status, "GET {path}: {body}");
    check(spec, "GET", documented, status, &body);
    body
}

fn write(stack: &Stack, name: &str, body: &Value) -> String {
    let path = stack.data.join(name);
    std::fs::write(&path, serde_json::to_vec(body).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn answers_of_a_running_system_match_the_document() {
    let spec = spec();
    let data = temp_data("openapi");
    let stack = Stack::start_ready(&data);

    get_checked(&stack, &spec, "/v1/health", "/v1/health", 200);
    let attestation = get_checked(
        &stack,
        &spec,
        "/v1/attestation?nonce=00ff",
        "/v1/attestation",
        200,
    );
    assert!(!attestation["document"].as_str().unwrap().is_empty());

    // Keys: the CLI prints the server's JSON as it came.
    let key = stack.cli_json(&["keys", "create", "--label", "openapi"]);
    check(&spec, "POST", "/v1/keys", 201, &key);
    let id = key["id"].as_str().unwrap().to_string();
    let list = get_checked(&stack, &spec, "/v1/keys", "/v1/keys", 200);
    assert_eq!(list["keys"][0]["id"], id.as_str());
    let shown = get_checked(
        &stack,
        &spec,
        &format!("/v1/keys/{id}"),
        "/v1/keys/{id}",
        200,
    );
    assert_eq!(shown["address"], key["address"]);

    // The audit head, and JSON-RPC with the development bearer token and without one.
    let head = get_checked(&stack, &spec, "/v1/audit/head", "/v1/audit/head", 200);
    assert!(
        head["seq"].as_u64().unwrap() >= 2,
        "boot, decision, key created: {head}"
    );
    let token = std::fs::read_to_string(data.join("dev/rpc-token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let accounts = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"});
    let (status, body) = http_with(
        &stack.url,
        "POST",
        "/rpc",
        Some(&accounts),
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    check(&spec, "POST", "/rpc", 200, &body);
    assert_eq!(body["result"][0], key["address"]);
    let (status, body) = http(&stack.url, "POST", "/rpc", Some(&accounts));
    assert_eq!(status, 401, "{body}");
    check(&spec, "POST", "/rpc", 401, &body);
    assert_eq!(body["error"]["code"], -32002);

    // Signing answers.
    let digest = format!("0x{}", "ab".repeat(32));
    let signed = stack.cli_json(&["sign", "digest", "--key", &id, "--digest", &digest]);
    check(&spec, "POST", "/v1/keys/{id}/sign/digest", 200, &signed);
    let message = format!("0x{}", hex::encode("checked against the OpenAPI document"));
    let file = write(&stack, "message.json", &json!({ "message": message }));
    let signed = stack.cli_json(&["sign", "message", "--key", &id, "--file", &file]);
    check(&spec, "POST", "/v1/keys/{id}/sign/message", 200, &signed);
    let tx = json!({"transaction": {"type": "0x2", "chainId": "0x1", "nonce": "0x0",
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": "0x1", "gas": "0x5208",
        "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}});
    let file = write(&stack, "tx.json", &tx);
    let signed = stack.cli_json(&["sign", "tx", "--key", &id, "--file", &file]);
    check(
        &spec,
        "POST",
        "/v1/keys/{id}/sign/transaction",
        200,
        &signed,
    );

    // Policy and governance reads.
    let policy = stack.cli_json(&["policy", "show"]);
    check(&spec, "GET", "/v1/policy", 200, &policy);
    get_checked(&stack, &spec, "/v1/policy", "/v1/policy", 200);
    let file = write(&stack, "same-policy.json", &policy["policy"]);
    let out = stack.cli(&["policy", "propose", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let proposal = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .trim()
        .to_string();
    let proposals = get_checked(
        &stack,
        &spec,
        "/v1/policy/proposals",
        "/v1/policy/proposals",
        200,
    );
    assert_eq!(proposals["proposals"][0]["id"], proposal.as_str());
    get_checked(
        &stack,
        &spec,
        &format!("/v1/policy/proposals/{proposal}"),
        "/v1/policy/proposals/{id}",
        200,
    );
    get_checked(&stack, &spec, "/v1/requests", "/v1/requests", 200);

    // Errors: from the proxy and from the enclave.
    let unknown = "0".repeat(32);
    let (_, e) = http(&stack.url, "GET", &format!("/v1/keys/{unknown}"), None);
    assert_eq!(e["error"]["code"], "not_found");
    check(&spec, "GET", "/v1/keys/{id}", 404, &e);
    let e = get_checked(
        &stack,
        &spec,
        "/v1/requests/0000000000000000",
        "/v1/requests/{id}",
        404,
    );
    assert_eq!(e["error"]["code"], "not_found");
    get_checked(
        &stack,
        &spec,
        "/v1/policy/proposals/0000000000000000",
        "/v1/policy/proposals/{id}",
        404,
    );
    get_checked(
        &stack,
        &spec,
        "/v1/attestation?nonce=xyz",
        "/v1/attestation",
        400,
    );
    let (status, e) = http(
        &stack.url,
        "POST",
        "/v1/keys",
        Some(&json!({"label": "no stamp"})),
    );
    assert_eq!(status, 401, "{e}");
    assert_eq!(e["error"]["code"], "unauthenticated");
    check(&spec, "POST", "/v1/keys", 401, &e);

    // The check is not vacuous: a key without its address does not pass.
    let mut broken = shown.clone();
    broken.as_object_mut().unwrap().remove("address");
    assert!(!problems(&spec, "GET", "/v1/keys/{id}", 200, &broken).is_empty());

    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

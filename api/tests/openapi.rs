//! `docs/openapi.json` and this crate cannot drift apart: every route and error code is
//! documented, and nothing is documented that is not one.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use serde_json::Value;
use strongroom_api::{ApiErrorCode, Id, ProxyRoute, Route};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&&**method) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let id = Id::new("0123456789abcdef").unwrap();
    let mut served: BTreeSet<(String, String)> = Route::every(&id)
        .iter()
        .map(|r| (r.method().to_string(), r.template()))
        .collect();
    served.extend(ProxyRoute::ALL.map(|r| (r.method().to_string(), r.path().to_string())));
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.json: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in docs/openapi.json but no Route or ProxyRoute: {unserved:?}"
    );
}

#[test]
fn every_error_code_is_documented_and_nothing_else() {
    let spec = spec();
    let listed = &spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
        ["enum"];
    let documented: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let known: BTreeSet<&str> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(documented, known, "docs/openapi.json's Error codes");
}

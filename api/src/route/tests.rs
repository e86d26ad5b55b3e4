#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}

#[test]
fn routes() {
    assert_eq!(Route::parse("POST", "/v1/keys"), Some(Route::CreateKey));
    assert_eq!(
        Route::parse("POST", "/v1/keys/ab/sign/typed-data?x=1"),
        Some(Route::Sign(id("ab"), SignKind::TypedData))
    );
    assert_eq!(Route::parse("GET", "/v1/keys"), Some(Route::ListKeys));
    assert_eq!(
        Route::parse("GET", "/v1/keys?after=ab&limit=2"),
        Some(Route::ListKeys)
    );
    assert!(!Route::GetPolicy.needs_stamp());
    assert!(Route::Propose.needs_stamp());
    assert_eq!(
        Route::Sign(id("0a"), SignKind::Digest).path(),
        "/v1/keys/0a/sign/digest"
    );
    assert_eq!(
        Route::Sign(id("0a"), SignKind::Digest).template(),
        "/v1/keys/{id}/sign/digest"
    );
}

#[test]
fn unknown_methods_paths_and_kinds_are_refused() {
    let refused = [
        ("PUT", "/v1/keys"),
        ("get", "/v1/keys"),
        ("DELETE", "/v1/keys"),
        ("GET", "/v1/keys/"),
        ("GET", "/v1/keys/."),
        ("GET", "/v1/keys/.."),
        ("GET", "/v1/keys/%2E%2E"),
        ("GET", "/v1/keys/%zz"),
        ("GET", "/v1/keys/%4"),
        ("GET", "/v1/keys/%+1"),
        ("GET", "/v1/keys/%FF"),
        ("GET", "/v1/keys/ab/"),
        ("GET", "/v1/keys//"),
        ("POST", "/v1/keys/ab/sign/other"),
        ("POST", "/v1/keys/ab/sign/Digest"),
        ("POST", "/v1/keys/ab/sign"),
        ("GET", "/v1/keys/ab/sign/digest"),
        ("POST", "/v1/keys/ab/sign/digest/more"),
        ("GET", "/v1/health"),
        ("GET", "/v1/audit"),
        ("GET", "/metrics"),
        ("GET", "/rpc"),
        ("POST", "/rpc/"),
        ("POST", "/v2/keys"),
        ("POST", "v1/keys"),
        ("POST", "//v1/keys"),
        ("POST", "/v1/requests/ab/sign"),
        ("POST", "/v1/policy/proposals/ab/execute"),
        ("GET", ""),
        ("GET", "/"),
    ];
    for (method, path) in refused {
        assert_eq!(Route::parse(method, path), None, "{method} {path}");
    }
}

#[test]
fn ids_that_cannot_be_a_segment_are_refused() {
    for bad in ["", ".", ".."] {
        assert!(Id::new(bad).is_err(), "{bad:?}");
        assert!(bad.parse::<Id>().is_err());
    }
    for good in ["...", ".a", "a b/c", "%", "0123456789abcdef"] {
        assert_eq!(Id::new(good).unwrap().as_str(), good);
    }
}

#[test]
fn ids_are_encoded_as_one_segment() {
    let r = Route::DestroyKey(id("a b/c?d#e%f"));
    assert_eq!(r.path(), "/v1/keys/a%20b%2Fc%3Fd%23e%25f");
    assert_eq!(Route::parse("DELETE", &r.path()), Some(r));
    let r = Route::GetKey(id("a/../../health"));
    assert_eq!(r.path(), "/v1/keys/a%2F..%2F..%2Fhealth");
    // Lowercase escapes decode too.
    assert_eq!(
        Route::parse("GET", "/v1/keys/a%2fb"),
        Some(Route::GetKey(id("a/b")))
    );
}

#[test]
fn every_route_is_listed_once_with_its_own_method_and_path() {
    let id = id("00");
    let every = Route::every(&id);
    assert_eq!(every.len(), 21);
    let mut seen: Vec<(&str, String)> = every.iter().map(|r| (r.method(), r.path())).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        every.len(),
        "two routes share a method and path"
    );
    for route in &every {
        assert_eq!(route.needs_stamp(), route.method() != "GET", "{route:?}");
        let key_route = matches!(
            route,
            Route::GetKey(_) | Route::DestroyKey(_) | Route::Sign(..)
        );
        assert_eq!(route.key_id(), key_route.then_some(&id), "{route:?}");
    }
    for proxy in ProxyRoute::ALL {
        assert_eq!(
            Route::parse(proxy.method(), proxy.path()),
            None,
            "{proxy:?}"
        );
    }
    assert_eq!(
        Route::ApproveRequest(id.clone()).signing_request_id(),
        Some(&id)
    );
    assert_eq!(Route::CancelRequest(id.clone()).signing_request_id(), None);
}

#[test]
fn sign_kinds_round_trip() {
    for kind in SignKind::ALL {
        assert_eq!(SignKind::from_segment(kind.segment()), Some(kind));
    }
    assert_eq!(SignKind::from_segment("typed_data"), None);
}

proptest! {
    /// Hex ids, as the API issues them: `parse(method(), path())` is the route.
    #[test]
    fn hex_ids_round_trip(id in "[0-9a-f]{1,64}") {
        let id = Id::new(id).unwrap();
        for route in Route::every(&id) {
            prop_assert_eq!(Route::parse(route.method(), &route.path()), Some(route.clone()));
            let with_query = format!("{}?after={}&limit=3", route.path(), id);
            prop_assert_eq!(Route::parse(route.method(), &with_query), Some(route));
        }
    }

    /// Any id at all: it stays one segment and comes back as it was.
    #[test]
    fn any_id_round_trips(id in any::<String>()) {
        let Ok(id) = Id::new(id) else { return Ok(()) };
        for route in Route::every(&id) {
            let path = route.path();
            prop_assert!(!path.contains(['?', '#', ' ']), "{}", path);
            prop_assert_eq!(path.matches('/').count(), route.template().matches('/').count());
            prop_assert_eq!(Route::parse(route.method(), &path), Some(route));
        }
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn parse_never_panics(method in "GET|POST|DELETE|PUT", path in ".{0,80}") {
        if let Some(route) = Route::parse(&method, &path) {
            prop_assert_eq!(route.method(), method.as_str());
        }
    }
}

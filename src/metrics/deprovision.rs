//! Does a PATCH or PUT of a User deprovision it (set `active` to false)? Read from the request
//! body, which the route's `max_body` already bounds; only those requests are inspected.
//!
//! SCIM attribute names are case-insensitive (RFC 7643 §2.1), and identity providers differ in
//! how they write the value: Entra ID sends `"value": "False"` (a string), Okta `false`.
//! Accepted, in a PUT body: `"active": false` at the top level. In a PATCH body's `Operations`
//! (an `add` or `replace`): `{"path": "active", "value": false}` (the path may carry the core
//! User schema URN), or no path and `{"value": {"active": false}}`.

use serde_json::{Map, Value};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";

/// The body of a PUT (`patch = false`) or PATCH (`patch = true`) of a User sets `active` false.
/// A body that is not JSON, or shaped otherwise, is not a deprovisioning.
pub fn deprovisions(patch: bool, body: &[u8]) -> bool {
    // Cheap guard: a body that never mentions the attribute needs no parse. A JSON escape
    // spells it without those letters (`"\u0061ctive"`), so a body with a backslash is parsed.
    if !contains_ignore_case(body, b"active") && !body.contains(&b'\\') {
        return false;
    }
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if !patch {
        return sets_inactive(&doc);
    }
    let Some(Value::Array(ops)) = field(&doc, "Operations") else {
        return false;
    };
    ops.iter().any(|op| {
        let Value::Object(op) = op else { return false };
        let kind = field(op, "op").and_then(Value::as_str).unwrap_or("");
        if !(kind.eq_ignore_ascii_case("replace") || kind.eq_ignore_ascii_case("add")) {
            return false;
        }
        match field(op, "path") {
            Some(Value::String(p)) => is_active_path(p) && field(op, "value").is_some_and(is_false),
            Some(_) => false,
            None => matches!(field(op, "value"), Some(Value::Object(v)) if sets_inactive(v)),
        }
    })
}

/// `active` (any casing) is false in this object.
fn sets_inactive(obj: &Map<String, Value>) -> bool {
    field(obj, "active").is_some_and(is_false)
}

/// `false`, or the strings `"false"`/`"False"` some providers send.
fn is_false(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::String(s) => s.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

fn is_active_path(p: &str) -> bool {
    let p = p.trim();
    let bare = match p.get(..USER_URN.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(USER_URN) => &p[USER_URN.len()..],
        _ => p,
    };
    bare.eq_ignore_ascii_case("active")
}

/// A member by case-insensitive name (an exact match first, the common case).
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: &str) -> bool {
        deprovisions(true, body.as_bytes())
    }

    #[test]
    fn patch_shapes_that_deprovision() {
        for body in [
            // Entra ID: a string "False", capitalised op.
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":false}]}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":"false"}]}"#,
            r#"{"Operations":[{"op":"add","path":"Active","value":false}]}"#,
            r#"{"operations":[{"OP":"replace","PATH":"active","VALUE":false}]}"#,
            r#"{"Operations":[{"op":"replace","value":{"active":false}}]}"#,
            r#"{"Operations":[{"op":"replace","value":{"Active":"False","displayName":"x"}}]}"#,
            r#"{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:active","value":false}]}"#,
            // Among other operations.
            r#"{"Operations":[{"op":"replace","path":"displayName","value":"x"},{"op":"Replace","path":"active","value":"False"}]}"#,
        ] {
            assert!(patch(body), "{body}");
        }
    }

    #[test]
    fn patch_shapes_that_do_not() {
        for body in [
            r#"{"Operations":[{"op":"replace","path":"active","value":true}]}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":"True"}]}"#,
            r#"{"Operations":[{"op":"remove","path":"active"}]}"#,
            r#"{"Operations":[{"op":"remove","path":"active","value":false}]}"#,
            r#"{"Operations":[{"op":"replace","path":"displayName","value":"active false"}]}"#,
            r#"{"Operations":[{"op":"replace","path":"inactive","value":false}]}"#,
            r#"{"Operations":[{"op":"replace","value":{"active":true}}]}"#,
            r#"{"Operations":[{"op":"replace","value":false}]}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":0}]}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":null}]}"#,
            r#"{"active":false}"#,
            r#"{"Operations":{"op":"replace","path":"active","value":false}}"#,
            r#"{"Operations":[{"op":"replace","path":"active","value":false}"#,
            "not json, but active false",
            "",
        ] {
            assert!(!patch(body), "{body}");
        }
    }

    #[test]
    fn put_bodies() {
        let put = |b: &str| deprovisions(false, b.as_bytes());
        assert!(put(
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a","active":false}"#
        ));
        assert!(put(r#"{"userName":"a","Active":"False"}"#));
        assert!(put(r#"{"userName":"a","ACTIVE":"false"}"#));
        assert!(!put(r#"{"userName":"a","active":true}"#));
        assert!(!put(r#"{"userName":"a"}"#));
        assert!(
            !put(r#"{"userName":"a","name":{"active":false}}"#),
            "only the top level"
        );
        assert!(!put(r#"[{"active":false}]"#));
        // Found by tests/properties.rs: escapes spell the name without its letters.
        assert!(put(r#"{"userName":"a","activ\u0065":false}"#));
        assert!(patch(
            r#"{"Operations":[{"op":"replace","path":"\u0061ctive","value":false}]}"#
        ));
        assert!(patch(
            r#"{"Operations":[{"op":"add","value":{"\u0041CTIVE":"False"}}]}"#
        ));
        // A PATCH document sent with PUT does not deprovision.
        assert!(!put(
            r#"{"Operations":[{"op":"replace","path":"active","value":false}]}"#
        ));
    }
}

//! The OpenAPI 3 document of every route (`server/openapi.json`, served at `/openapi.json`),
//! and what it says each path allows: the `Allow` header of a 405 comes from it.

use std::sync::LazyLock;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../openapi.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Path templates (`/uploads/{id}`) and their methods, upper case, in the document's order.
static ROUTES: LazyLock<Vec<(String, Vec<String>)>> = LazyLock::new(|| {
    let doc: serde_json::Value =
        serde_json::from_str(DOCUMENT).expect("server/openapi.json is valid JSON");
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .map(|(template, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            (template.clone(), methods)
        })
        .collect()
});

/// Whether `path` is an instance of `template`: `{name}` stands for one non-empty segment, and a
/// trailing slash does not matter (the tus endpoint answers `/files` and `/files/`).
fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// The document's template that `path` is an instance of (`/uploads/{id}`), if any; a literal
/// segment wins over a parameter.
pub fn route_template(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .filter(|(template, _)| matches(template, path))
        .min_by_key(|(template, _)| template.matches('{').count())
        .map(|(template, _)| template.as_str())
}

/// The methods the document lists for `path` (`GET, HEAD`), for the `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> Option<String> {
    // A literal segment wins over a parameter (`/uploads/proof` over `/uploads/{id}`).
    ROUTES
        .iter()
        .filter(|(template, _)| matches(template, path))
        .min_by_key(|(template, _)| template.matches('{').count())
        .map(|(_, methods)| methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_parses_and_ids_are_unique() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    ids.push(op["operationId"].as_str().unwrap().to_owned());
                }
            }
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate operationId");
    }

    #[test]
    fn allow_from_templates() {
        assert_eq!(allowed_methods("/file/meta").as_deref(), Some("GET, POST"));
        assert_eq!(
            allowed_methods("/uploads/0123456789abcdef0123456789abcdef").as_deref(),
            Some("GET, DELETE")
        );
        assert_eq!(
            allowed_methods("/uploads/x/parts/3").as_deref(),
            Some("PUT")
        );
        assert_eq!(allowed_methods("/files").as_deref(), Some("POST, OPTIONS"));
        assert_eq!(
            allowed_methods("/files/abc").as_deref(),
            Some("DELETE, OPTIONS, HEAD, PATCH")
        );
        assert_eq!(allowed_methods("/uploads/proof").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/nope"), None);
        assert_eq!(allowed_methods("/uploads/x/parts"), None);
    }
}

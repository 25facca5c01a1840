//! Request-body helpers: parse JSON from bytes and read typed fields with messages that name
//! the field (`Invalid settings: "transcoding.video.fps" must be an integer in 0..=60.`).
//! Unknown fields are ignored (clients generated from other versions of the documented API
//! send fields Sluice does not use); see `docs/api.md`.

use super::{ApiError, msg};
use serde_json::{Map, Value};

/// Deepest JSON nesting accepted: serde_json's own recursion limit is 128; bodies of this API
/// nest at most 5 levels, so anything deeper is refused before walking it.
pub const MAX_JSON_DEPTH: usize = 16;

fn depth(v: &Value, d: usize) -> usize {
    match v {
        Value::Array(a) => a.iter().map(|x| depth(x, d + 1)).max().unwrap_or(d + 1),
        Value::Object(o) => o.values().map(|x| depth(x, d + 1)).max().unwrap_or(d + 1),
        _ => d,
    }
}

/// Parses a JSON body: invalid UTF-8, syntax errors and excessive nesting give 400.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad("Invalid body: the request body is empty."));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad(format!("Invalid body: not UTF-8 ({e}).")))?;
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("Invalid body: malformed JSON ({e}).")))?;
    if depth(&v, 0) > MAX_JSON_DEPTH {
        return Err(ApiError::bad("Invalid body: nested too deeply."));
    }
    Ok(v)
}

/// A JSON object being read, with its dotted path for messages.
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    /// The object.
    pub map: &'a Map<String, Value>,
    path: &'a str,
}

/// `body.settings`, required and an object (else `Invalid settings.`).
pub fn settings(v: &Value) -> Result<Obj<'_>, ApiError> {
    match v.as_object().and_then(|o| o.get("settings")) {
        Some(Value::Object(m)) => Ok(Obj { map: m, path: "" }),
        _ => Err(ApiError::bad(msg::INVALID_SETTINGS)),
    }
}

/// The root object of a body (for bodies without `settings`).
pub fn root(v: &Value) -> Result<Obj<'_>, ApiError> {
    match v {
        Value::Object(m) => Ok(Obj { map: m, path: "" }),
        _ => Err(ApiError::bad("Invalid body: expected a JSON object.")),
    }
}

/// An `Invalid settings: "<path>" <what>.` error.
pub fn invalid(path: &str, what: &str) -> ApiError {
    ApiError::bad(format!("Invalid settings: \"{path}\" {what}."))
}

impl<'a> Obj<'a> {
    /// Dotted path of a member.
    pub fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Whether a member is present (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Raw member; null counts as absent.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Optional integer within `lo..=hi`.
    pub fn int(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(
                    &self.path_of(name),
                    &format!("must be an integer in {lo}..={hi}"),
                )),
            },
        }
    }

    /// Optional boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(&self.path_of(name), "must be true or false")),
        }
    }

    /// Optional string.
    pub fn str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(&self.path_of(name), "must be a string")),
        }
    }

    /// Optional object; `path` must outlive the child (pass a String you keep).
    pub fn obj<'b>(&self, name: &str, path: &'b str) -> Result<Option<Obj<'b>>, ApiError>
    where
        'a: 'b,
    {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Obj { map: m, path })),
            Some(_) => Err(invalid(&self.path_of(name), "must be an object")),
        }
    }

    /// An element of an array as an object.
    pub fn child(map: &'a Map<String, Value>, path: &'a str) -> Obj<'a> {
        Obj { map, path }
    }
}

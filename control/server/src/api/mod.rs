//! The REST API (`docs/api.md`): Agora Media Gateway compatible paths, envelopes, status codes
//! and messages (api-digest §1 and its conflict-settling decisions), plus Sluice's additions
//! (RTP forwarders, events, key inspector, template reads).
//!
//! Request pipeline, outermost first: request ID (echoed or generated, omitted on 401) →
//! body cap (413) → authentication (401) → per-app rate limit (429) → handler. Handlers parse
//! bodies from bytes themselves so every malformed input gets the same JSON error envelope.

pub mod auth;
pub mod body;
pub mod keys;
pub mod ratelimit;
pub mod streams;
pub mod templates;

use crate::config::{AppConfig, Config};
use crate::store::{AppRow, Store, StoreError, StoreResult};
use crate::table::{ConfigChange, ConfigSink, EventInfo, StatsSource, StreamCommand};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Documented error messages (api-digest §1.7).
pub mod msg {
    /// 400, stream keys and templates.
    pub const INVALID_SETTINGS: &str = "Invalid settings.";
    /// 400, stream-key channel.
    pub const INVALID_CHANNEL: &str = "Invalid 'channel' format.";
    /// 400, template ID.
    pub const INVALID_TEMPLATE_ID: &str = "Invalid template ID.";
    /// 400, queries.
    pub const INVALID_BODY: &str = "Invalid body.";
    /// 400, app ID with characters no app ID has.
    pub const INVALID_APP_ID: &str = "Invalid app ID.";
    /// 400, empty SID.
    pub const SID_MISSING: &str = "SID is missing.";
    /// 401.
    pub const UNAUTHORIZED: &str = "Invalid authentication credentials.";
    /// 403, unknown app.
    pub const NOT_ENABLED: &str =
        "Media Gateway is not enabled for this project. Contact us to enable.";
    /// 403, stream of another app.
    pub const NOT_THIS_APP: &str = "Stream does not belong to this app ID.";
    /// 403, template cap.
    pub const TOO_MANY_TEMPLATES: &str = "Too many templates have been created.";
    /// 404, stream keys and other resources.
    pub const NOT_FOUND: &str = "Resource not found and destroyed.";
    /// 404, templates.
    pub const TEMPLATE_NOT_FOUND: &str = "Stream template not found.";
    /// 404, unknown SID (documented as an empty message).
    pub const NO_SUCH_STREAM: &str = "";
    /// 409.
    pub const CONFLICT: &str = "Resource with the same name already exists.";
    /// 429.
    pub const RATE_LIMITED: &str = "Request rate limit exceeded.";
    /// 500.
    pub const INTERNAL: &str = "Internal error. Contact us to help fix it.";
}

/// Templates per app (api-digest §1.8).
pub const MAX_TEMPLATES_PER_APP: usize = 10;
/// Recent events kept in memory for `GET .../events`: bounds memory whatever the dataplane
/// publishes.
pub const MAX_RECENT_EVENTS: usize = 1024;

/// An error answer: `{"status":"error","message":...}` with a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `message` field.
    pub message: String,
}

impl ApiError {
    /// Any status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    /// 500; the detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg::INTERNAL)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::new(StatusCode::CONFLICT, msg::CONFLICT),
            StoreError::LimitReached => {
                ApiError::new(StatusCode::FORBIDDEN, msg::TOO_MANY_TEMPLATES)
            }
            StoreError::Backend(d) => ApiError::internal(d),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"status": "error", "message": self.message})),
        )
            .into_response()
    }
}

/// Handler result.
pub type ApiResult = Result<Response, ApiError>;

/// `{"status":"success"}`.
pub fn ok() -> ApiResult {
    Ok(Json(json!({"status": "success"})).into_response())
}

/// `{"status":"success","data":...}`.
pub fn ok_data(data: Value) -> ApiResult {
    Ok(Json(json!({"status": "success", "data": data})).into_response())
}

/// Shared state of the API.
pub struct AppState {
    /// Effective configuration.
    pub config: Config,
    /// Durable store.
    pub store: Arc<dyn Store>,
    /// Table writer.
    pub sink: Arc<dyn ConfigSink>,
    /// Table reader.
    pub stats: Arc<dyn StatsSource>,
    /// Served apps by ID.
    pub apps: BTreeMap<String, AppRow>,
    /// Rate limiter.
    pub limiter: ratelimit::RateLimiter,
    /// Current command per (app, sid).
    pub commands: Mutex<HashMap<(String, String), StreamCommand>>,
    /// Recent events, oldest first.
    pub events: Mutex<VecDeque<EventInfo>>,
    /// Webhook dispatcher fed by [`AppState::pump_events`].
    pub webhooks: crate::webhook::Webhooks,
    /// REST request counters for `/metrics`.
    pub rest_metrics: crate::metrics::RestCounters,
}

/// App row from its configuration.
pub fn app_row(a: &AppConfig) -> AppRow {
    AppRow {
        id: a.id.clone(),
        certificate_hex: a.certificate.to_ascii_lowercase(),
        domains: a.domains.clone(),
        srt_passphrase: a.srt_passphrase.clone(),
        srt_pbkeylen: a.srt_pbkeylen,
        max_streams: a.max_streams,
        max_bitrate_kbps: a.max_bitrate_kbps,
        duplicate_policy: a.duplicate_policy,
    }
}

impl AppState {
    /// Writes the configured apps to the store, then rebuilds the table from the store
    /// (apps not in the configuration are left out of the table).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        sink: Arc<dyn ConfigSink>,
        stats: Arc<dyn StatsSource>,
    ) -> anyhow::Result<AppState> {
        let mut apps = BTreeMap::new();
        for a in &config.apps {
            let row = app_row(a);
            store.upsert_app(&row)?;
            apps.insert(row.id.clone(), row);
        }
        let mut snap = store.snapshot(crate::time::now_unix())?;
        snap.apps.retain(|(a, _)| apps.contains_key(&a.id));
        snap.keys.retain(|k| apps.contains_key(&k.app_id));
        snap.templates.retain(|t| apps.contains_key(&t.app_id));
        snap.revocations.retain(|r| apps.contains_key(&r.app_id));
        snap.forwarders.retain(|f| apps.contains_key(&f.app_id));
        sink.sync(&snap)?;
        let limiter = ratelimit::RateLimiter::new(config.control.rate_limits);
        let webhooks = crate::webhook::Webhooks::start(
            config.webhooks.clone(),
            &config.control.region,
            crate::webhook::DeliveryPolicy::default(),
        );
        Ok(AppState {
            config,
            store,
            sink,
            stats,
            apps,
            limiter,
            commands: Mutex::new(HashMap::new()),
            events: Mutex::new(VecDeque::new()),
            webhooks,
            rest_metrics: crate::metrics::RestCounters::default(),
        })
    }

    /// Forwards a durable change to the table. A failure is logged, not returned: the change
    /// is durable and the table is rebuilt from the store at the next start.
    pub fn publish(&self, change: ConfigChange) {
        if let Err(e) = self.sink.apply(&change) {
            tracing::error!("table write failed (store is up to date): {e}");
        }
    }

    /// Drains new dataplane events into the recent-events buffer and the webhook queue.
    /// Called every [`EVENT_PUMP_INTERVAL`] by the server and before `GET .../events`.
    pub fn pump_events(&self) {
        let (new, lost) = self.stats.poll_events();
        if lost > 0 {
            tracing::warn!("{lost} dataplane events lost to ring overwrite");
        }
        for e in &new {
            tracing::info!(
                event = e.kind.name(), sid = %e.sid, app = %e.app_id, channel = %e.channel,
                uid = %e.uid, key = %crate::mask_key(&e.stream_key), code = e.error_code,
                reason = %e.reason, "stream event"
            );
            self.webhooks.submit(e);
        }
        if let Ok(mut ev) = self.events.lock() {
            for e in new {
                if ev.len() >= MAX_RECENT_EVENTS {
                    ev.pop_front();
                }
                ev.push_back(e);
            }
        }
    }
}

/// How often the server drains the dataplane's event ring.
pub const EVENT_PUMP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a store call off the async executor: SQLite with `synchronous = FULL` blocks on fsync.
pub async fn db<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// Path parameters, with rejections turned into the JSON error envelope.
pub struct PathParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state).await
        {
            Ok(p) => Ok(PathParams(p.0)),
            Err(e) => Err(ApiError::bad(format!("Invalid path: {}", e.body_text()))),
        }
    }
}

impl PathParams {
    /// A parameter (empty if absent).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Query parameters (raw), with rejections turned into the envelope.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
        {
            Ok(q) => Ok(QueryParams(q.0)),
            Err(e) => Err(ApiError::bad(format!("Invalid query: {}", e.body_text()))),
        }
    }
}

/// The resolved `/{region}/{version}/projects/{appId}` scope of a request.
pub struct Scope {
    /// The app.
    pub app: AppRow,
    /// `v1` or `v2`.
    pub version: String,
}

/// Checks region, version (one of `versions`) and app of a request path.
pub fn scope(st: &AppState, p: &PathParams, versions: &[&str]) -> Result<Scope, ApiError> {
    let region = p.get("region");
    if region != st.config.control.region {
        return Err(ApiError::bad(format!(
            "Invalid region: {region:?}. This gateway serves region {:?}.",
            st.config.control.region
        )));
    }
    let version = p.get("version");
    if !versions.contains(&version) {
        return Err(ApiError::not_found(format!(
            "Unsupported API version {version:?} for this path."
        )));
    }
    let app_id = p.get("appId");
    if !crate::config::valid_app_id(app_id) {
        return Err(ApiError::bad(msg::INVALID_APP_ID));
    }
    let app = st
        .apps
        .get(app_id)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, msg::NOT_ENABLED))?;
    Ok(Scope {
        app,
        version: version.to_string(),
    })
}

/// Longest accepted X-Request-ID; longer ones are replaced by a generated ID.
pub const MAX_REQUEST_ID_LEN: usize = 128;

fn new_request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| {
        b.get(r)
            .unwrap_or(&[])
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_REQUEST_ID_LEN
                && s.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let mut resp = next.run(req).await;
    if resp.status() != StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The route template a request matched, put on the response by [`tag_route`] so the
/// outermost [`count_requests`] can label it (requests refused before routing have none).
#[derive(Clone)]
struct RouteTag(String);

async fn tag_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(RouteTag(r));
    }
    resp
}

async fn count_requests(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteTag>()
        .map(|r| r.0.as_str())
        .unwrap_or("other");
    st.rest_metrics
        .record(&method, route, resp.status().as_u16());
    resp
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let text = crate::metrics::render(
        &*st.stats,
        &st.rest_metrics,
        st.webhooks.counters(),
        crate::time::now_ms(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let cap = st.config.control.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, cap).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body larger than {cap} bytes."),
            )
            .into_response();
        }
    };
    let path = parts.uri.path().to_string();
    let open = path == "/healthz" || (path == "/metrics" && !st.config.control.metrics_auth);
    if !open {
        if let Err(e) = auth::verify(&st.config, &parts, &bytes, crate::time::now_unix()) {
            tracing::debug!("auth refused: {e}");
            return ApiError::new(StatusCode::UNAUTHORIZED, msg::UNAUTHORIZED).into_response();
        }
        // Quotas are per app: the app is the 4th path segment of every /{region}/{v}/projects/
        // path.
        let segs: Vec<&str> = path.split('/').collect();
        if segs.get(3) == Some(&"projects")
            && let Some(app) = segs.get(4)
            && !st.limiter.allow(app, ratelimit::Class::of(&parts.method))
        {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg::RATE_LIMITED).into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let hb = st.stats.dataplane_heartbeat_ms();
    let age = if hb == 0 {
        Value::Null
    } else {
        json!(crate::time::now_ms().saturating_sub(hb))
    };
    Json(json!({"status": "ok", "apps": st.apps.len(), "dataplaneHeartbeatAgeMs": age}))
        .into_response()
}

async fn ncs_ip(State(st): State<Arc<AppState>>) -> Response {
    let mut ips = st.config.control.notify_ips.clone();
    if ips.is_empty() {
        let ip = st.config.control.listen.ip();
        ips.push(if ip.is_unspecified() {
            "127.0.0.1".into()
        } else {
            ip.to_string()
        });
    }
    let hosts: Vec<Value> = ips.into_iter().map(|ip| json!({"primaryIP": ip})).collect();
    Json(json!({"data": {"service": {"hosts": hosts}}})).into_response()
}

async fn fallback() -> ApiError {
    ApiError::not_found("No such endpoint.")
}

async fn method_fallback() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint.",
    )
}

/// Every route: `add(path, handlers)`, recording each path so [`served_paths`] lists exactly
/// what the router serves (the OpenAPI coverage test compares it with `docs/openapi.yaml`).
fn routes(paths: &mut Vec<String>) -> Router<Arc<AppState>> {
    const P: &str = "/{region}/{version}/projects/{appId}/rtls/ingress";
    let mut add = |router: Router<Arc<AppState>>, path: String, m: MethodRouter<Arc<AppState>>| {
        let r = router.route(&path, m);
        paths.push(path);
        r
    };
    let r = |s: &str| format!("{P}{s}");
    let mut x = Router::new();
    x = add(x, "/healthz".into(), get(healthz));
    x = add(x, "/metrics".into(), get(metrics));
    x = add(x, "/v2/ncs/ip".into(), get(ncs_ip));
    x = add(x, r("/streamkeys"), post(keys::create).get(keys::list));
    x = add(x, r("/streamkeys:inspect"), post(keys::inspect));
    x = add(
        x,
        r("/streamkeys/{streamkey}"),
        get(keys::query).put(keys::rebind).delete(keys::delete),
    );
    x = add(x, r("/stream-templates"), get(templates::list));
    x = add(
        x,
        r("/stream-templates/{templateId}"),
        get(templates::get_one)
            .put(templates::put)
            .patch(templates::patch)
            .delete(templates::delete),
    );
    x = add(
        x,
        r("/appconfig"),
        get(templates::get_appconfig).put(templates::put_appconfig),
    );
    x = add(x, r("/online-streams"), get(streams::list));
    x = add(
        x,
        r("/online-streams/{sid}"),
        get(streams::query).delete(streams::kick),
    );
    x = add(x, r("/online-streams/mute/{sid}"), post(streams::mute));
    x = add(x, r("/online-streams/{sid}/mute"), post(streams::mute));
    x = add(
        x,
        r("/online-streams/{sid}/forwarders"),
        post(streams::add_forwarder).get(streams::list_forwarders),
    );
    x = add(
        x,
        r("/online-streams/{sid}/forwarders/{forwarderId}"),
        axum::routing::delete(streams::delete_forwarder),
    );
    x = add(x, r("/events"), get(streams::events));
    x
}

/// The path templates the router serves, in axum's `{param}` syntax (the same syntax as
/// OpenAPI path templates).
pub fn served_paths() -> Vec<String> {
    let mut v = Vec::new();
    let _ = routes(&mut v);
    v
}

/// The full router.
pub fn router(st: Arc<AppState>) -> Router {
    routes(&mut Vec::new())
        .route_layer(middleware::from_fn(tag_route))
        .fallback(fallback)
        .method_not_allowed_fallback(method_fallback)
        .layer(middleware::from_fn_with_state(st.clone(), guard))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn_with_state(st.clone(), count_requests))
        .with_state(st)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    st: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(st))
        .with_graceful_shutdown(shutdown)
        .await
}

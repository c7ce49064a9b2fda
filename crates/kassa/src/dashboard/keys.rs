//! API keys: the organization's keys (name, prefix, when made and last used, revoked or not),
//! a new key (made as `kassa api-key create` makes it: the raw key is shown once, on the page
//! the form's answer renders, and only its hash is kept) and revoking one. The API has no
//! route for keys: this page reads and writes the store.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::i18n;
use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::api::rfc3339_ms;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("keys.title", "API-ключи", "API keys"),
    ("keys.intro", "Ключ даёт доступ к API от имени организации. Храните его на сервере магазина, не в браузере.", "A key gives access to the API on behalf of the organization. Keep it on the shop's server, never in a browser."),
    ("keys.name", "Название", "Name"),
    ("keys.name_hint", "Чтобы отличать ключи, например «сайт» или «1С».", "To tell keys apart, e.g. \"website\" or \"ERP\"."),
    ("keys.name_too_long", "Название не длиннее 100 символов.", "The name may not be longer than 100 characters."),
    ("keys.prefix", "Начало ключа", "Starts with"),
    ("keys.last_used", "Последнее использование", "Last used"),
    ("keys.never", "никогда", "never"),
    ("keys.state", "Состояние", "State"),
    ("keys.active", "действует", "active"),
    ("keys.revoked", "отозван", "revoked"),
    ("keys.revoke", "Отозвать", "Revoke"),
    ("keys.revoke_confirm", "Отозвать этот ключ? Запросы с ним сразу перестанут работать.", "Revoke this key? Requests with it stop working at once."),
    ("keys.new", "Новый ключ", "New key"),
    ("keys.create", "Создать ключ", "Create a key"),
    ("keys.your_key", "Ваш новый ключ", "Your new key"),
    ("done.key_created", "Ключ создан.", "The key was created."),
    ("done.key_revoked", "Ключ отозван.", "The key was revoked."),
];

/// The longest name a key may have (characters).
const MAX_NAME_CHARS: usize = 100;

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}/revoke", post(revoke))
}

/// The list page; `extra` adds to it (the new key shown once, the form's errors).
async fn page(dash: &Dashboard, me: &Signed, extra: Value) -> Result<Response, DashError> {
    let keys: Vec<Value> = dash
        .state()
        .store
        .orgs()
        .list_api_keys(me.org_id())
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": rfc3339_ms(k.created_at),
                "last_used_at": k.last_used_at.map(rfc3339_ms),
                "revoked_at": k.revoked_at.map(rfc3339_ms),
            })
        })
        .collect();
    let mut data = json!({"keys": keys, "form": {}, "errors": {}});
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    dash.page(me, "keys.html", "keys", data).await
}

/// `GET /dashboard/api-keys`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    page(&dash, &me, json!({})).await
}

#[derive(Debug, Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
}

/// `POST /dashboard/api-keys`: a new key, made as the CLI makes it, shown on the page this
/// once (never in a URL; only its hash is stored).
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<NewKey>,
) -> Result<Response, DashError> {
    let name = form.name.trim().to_owned();
    if name.chars().count() > MAX_NAME_CHARS {
        let message = i18n::word(me.lang, "keys.name_too_long").unwrap_or_default();
        let mut response = page(
            &dash,
            &me,
            json!({"form": {"name": name}, "errors": {"name": message}}),
        )
        .await?;
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    let state = dash.state();
    // A key of the side shown: in test mode, a test key of the test organization.
    let (raw, prefix) = crate::secrets::new_api_key_for(me.mode);
    let record = state
        .store
        .orgs()
        .create_api_key(
            me.org_id(),
            &name,
            &prefix,
            &state.master_key.api_key_hash(&raw),
        )
        .await?;
    tracing::info!(
        org_id = me.org_id(),
        key_id = record.id,
        prefix = %record.prefix,
        user = %me.session.email,
        "dashboard: API key created"
    );
    let flash = i18n::word(me.lang, "done.key_created");
    page(
        &dash,
        &me,
        json!({
            "new_key": raw,
            "new_key_id": record.id,
            "flash": flash,
        }),
    )
    .await
}

/// `POST /dashboard/api-keys/{id}/revoke`.
async fn revoke(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = crate::api::extract::parse_id(&id).ok_or(DashError::NotFound)?;
    let revoked = dash
        .state()
        .store
        .orgs()
        .revoke_api_key(me.org_id(), &id.to_string())
        .await?;
    if revoked == 0 {
        return Err(DashError::NotFound);
    }
    tracing::info!(
        org_id = me.org_id(),
        key_id = id,
        user = %me.session.email,
        "dashboard: API key revoked"
    );
    Ok(see_other("/dashboard/api-keys?done=key_revoked"))
}

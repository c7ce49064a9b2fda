//! API keys: the organization's keys (name, prefix, scopes, when made and last used, revoked
//! or not), a new key (made as `kassa api-key create` makes it, with the scopes ticked: the raw
//! key is shown once, on the page the form's answer renders, and only its hash is kept) and
//! revoking one. The API has no route for keys: this page reads and writes the store.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{json, Value};

use super::i18n;
use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::api::rfc3339_ms;
use crate::domain::{Resource, Scope, Scopes};

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
    ("keys.scopes", "Права", "Scopes"),
    ("keys.scopes_all", "все", "all"),
    ("keys.read", "чтение", "read"),
    ("keys.write", "запись", "write"),
    ("keys.scopes_hint", "Что ключ может делать. Запись включает чтение того же раздела. Запрос вне прав получает ответ 403.", "What the key may do. Write includes reading the same resource. A request outside them is answered 403."),
    ("keys.scopes_none", "Отметьте хотя бы одно право.", "Tick at least one scope."),
    ("keys.scope_unknown", "Неизвестное право.", "Unknown scope."),
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
                "all_scopes": k.scopes.is_all(),
                "scopes": k.scopes.shortest().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "created_at": rfc3339_ms(k.created_at),
                "last_used_at": k.last_used_at.map(rfc3339_ms),
                "revoked_at": k.revoked_at.map(rfc3339_ms),
            })
        })
        .collect();
    // The form's choices: each resource with its read and write scope, ticked unless the
    // answered form unticked them.
    let resources: Vec<Value> = Resource::ALL
        .into_iter()
        .map(|r| json!({"name": r.as_str(), "read": Scope::read(r).to_string(), "write": Scope::write(r).to_string()}))
        .collect();
    let mut data = json!({
        "keys": keys,
        "resources": resources,
        "form": {"scopes": Scope::all().map(|s| s.to_string()).collect::<Vec<_>>()},
        "errors": {},
    });
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

/// `POST /dashboard/api-keys` (fields `name` and `scope`, one per ticked scope): a new key,
/// made as the CLI makes it, shown on the page this once (never in a URL; only its hash is
/// stored).
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, DashError> {
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v)
    };
    let name = values("name").next().map_or("", |v| v.trim()).to_owned();
    let ticked: Vec<&String> = values("scope").collect();
    let mut errors = serde_json::Map::new();
    if name.chars().count() > MAX_NAME_CHARS {
        let message = i18n::word(me.lang, "keys.name_too_long").unwrap_or_default();
        errors.insert("name".into(), message.into());
    }
    let scopes = match Scopes::from_list(&ticked) {
        Ok(scopes) if scopes.is_empty() => Err("keys.scopes_none"),
        Ok(scopes) => Ok(scopes),
        Err(_) => Err("keys.scope_unknown"),
    };
    if let Err(word) = scopes {
        let message = i18n::word(me.lang, word).unwrap_or_default();
        errors.insert("scopes".into(), message.into());
    }
    let scopes = match scopes {
        Ok(scopes) if errors.is_empty() => scopes,
        _ => {
            let form = json!({"name": name, "scopes": ticked});
            let mut response = page(&dash, &me, json!({"form": form, "errors": errors})).await?;
            *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(response);
        }
    };
    let state = dash.state();
    // A key of the side shown: in test mode, a test key of the test organization.
    let (raw, prefix) = crate::secrets::new_api_key_for(me.mode);
    let record = state
        .store
        .orgs()
        .create_scoped_api_key(
            me.org_id(),
            &name,
            &prefix,
            &state.master_key.api_key_hash(&raw),
            scopes,
        )
        .await?;
    tracing::info!(
        org_id = me.org_id(),
        key_id = record.id,
        prefix = %record.prefix,
        scopes = %record.scopes,
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

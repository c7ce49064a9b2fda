//! The team page (`/dashboard/team`): the organization's members with their role and status;
//! inviting someone (e-mail and role: a one-time sign-in link, shown once on the page), changing
//! a member's role and removing a member (disabled; their sessions end at once). And a member's
//! own password (`/dashboard/password`): an invited member signs in by the link and sets one
//! there; every page asks until they have.
//!
//! Rules beyond the route's permission (`ManageTeam`, see `access.rs`): nobody changes or
//! removes themselves; only an owner touches an owner or grants the owner role
//! ([`Role::may_manage`], [`Role::may_grant`]); the store refuses any change that would leave
//! the organization without an active owner, in the change's own transaction. The team is the
//! live organization's in test mode too (`mode.rs`): people and roles have one side.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::i18n::word;
use super::render::{DashError, Signed};
use super::{path_id, see_other, Dashboard};
use crate::api::rfc3339_ms;
use crate::domain::{normalize_email, Role, MIN_PASSWORD_CHARS};
use crate::store::{StoreError, TeamChange, LAST_OWNER};

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("team.title", "Команда", "Team"),
    ("team.intro", "Кто входит в панель и что может делать.", "Who signs in to the dashboard and what each may do."),
    ("team.email", "Эл. почта", "E-mail"),
    ("team.role", "Роль", "Role"),
    ("team.status", "Состояние", "Status"),
    ("team.since", "Добавлен", "Added"),
    ("team.active", "работает", "active"),
    ("team.invited", "приглашён", "invited"),
    ("team.removed", "удалён", "removed"),
    ("team.you", "это вы", "you"),
    ("team.change", "Сменить роль", "Change role"),
    ("team.remove", "Удалить", "Remove"),
    ("team.remove_confirm", "Удалить участника? Его сессии сразу закончатся.", "Remove this member? Their sessions end at once."),
    ("team.invite", "Пригласить", "Invite"),
    ("team.invite_title", "Новый участник", "Invite a member"),
    ("team.invite_link", "Ссылка-приглашение", "Invitation link"),
    ("team.invite_hint", "Отправьте ссылку приглашённому: она входит в панель один раз, в течение 7 дней; затем он задаёт пароль.", "Send the link to the person invited: it signs them in once, within 7 days; then they set a password."),
    ("team.bad_email", "Это не адрес эл. почты.", "This is not an e-mail address."),
    ("team.email_taken", "Пользователь с такой почтой уже есть.", "A user with this e-mail exists."),
    ("team.bad_role", "Эту роль вы дать не можете.", "You may not give this role."),
    ("team.not_self", "Свою роль менять и себя удалять нельзя.", "You cannot change your own role or remove yourself."),
    ("team.not_owner", "Владельцев меняет и удаляет только владелец.", "Only an owner changes or removes an owner."),
    ("team.last_owner", "В организации должен остаться хотя бы один владелец.", "The organization must keep at least one active owner."),
    ("team.changed_meanwhile", "Роль участника уже изменилась — обновите страницу.", "The member's role changed meanwhile: reload the page."),
    ("team.roles_help", "Владелец — всё, включая команду; администратор — всё, кроме владельцев; разработчик — API-ключи, вебхуки, счета, подписки, каталог, песочница; оператор — создать, отменить и вернуть счёт; наблюдатель — только просмотр.", "Owner: everything, the team included; admin: everything but the owners; developer: API keys, webhooks, invoices, subscriptions, catalog, sandbox; operator: create, cancel and refund invoices; viewer: read only."),
    ("done.role_changed", "Роль изменена.", "The role was changed."),
    ("done.member_removed", "Участник удалён, его сессии закончились.", "The member was removed; their sessions have ended."),
    ("password.title", "Пароль", "Password"),
    ("password.needed", "У вас ещё нет пароля: без него войти можно только по новой ссылке.", "You have no password yet: without one you can only sign in with a new link."),
    ("password.set", "Задать пароль", "Set a password"),
    ("password.current", "Текущий пароль", "Current password"),
    ("password.new", "Новый пароль", "New password"),
    ("password.again", "Ещё раз", "Again"),
    ("password.too_short", "Не короче 10 символов.", "At least 10 characters."),
    ("password.differ", "Пароли не совпадают.", "The passwords differ."),
    ("password.wrong", "Неверный пароль.", "Wrong password."),
    ("done.password_set", "Пароль сохранён.", "The password was saved."),
];

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/team", get(list))
        .route("/team/invite", post(invite))
        .route("/team/{id}/role", post(change_role))
        .route("/team/{id}/remove", post(remove))
        .route("/password", get(password_form).post(set_password))
}

/// The team page with `extra` (the invitation link shown once, a form's errors) and `status`.
async fn page(
    dash: &Dashboard,
    me: &Signed,
    extra: Value,
    status: StatusCode,
) -> Result<Response, DashError> {
    let my_role = me.session.role;
    let members: Vec<Value> = dash
        .state()
        .store
        .users()
        .list_members(me.live_org_id())
        .await?
        .into_iter()
        .map(|m| {
            let u = m.user;
            let status = match (u.disabled_at, m.joined) {
                (Some(_), _) => "removed",
                (None, true) => "active",
                (None, false) => "invited",
            };
            let is_me = u.id == me.session.user_id;
            json!({
                "id": u.id,
                "email": u.email,
                "role": u.role.as_str(),
                "status": status,
                "created_at": rfc3339_ms(u.created_at),
                "is_me": is_me,
                "manageable": !is_me && u.disabled_at.is_none() && my_role.may_manage(u.role),
            })
        })
        .collect();
    let grantable: Vec<&str> = Role::ALL
        .iter()
        .filter(|r| my_role.may_grant(**r))
        .map(|r| r.as_str())
        .collect();
    let mut data = json!({
        "members": members,
        "grantable": grantable,
        "form": {"role": "viewer"},
        "errors": {},
    });
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    let mut response = dash.page(me, "team.html", "team", data).await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /dashboard/team`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    page(&dash, &me, json!({}), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// `POST /dashboard/team/invite`: a new member (or a removed one back) with the role asked,
/// and a one-time link that signs them in, shown on the page this once.
async fn invite(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Result<Response, DashError> {
    let refuse = |field: &str, key: &str, status: StatusCode| {
        let message = word(me.lang, key).unwrap_or(key);
        let extra = json!({
            "form": {"email": form.email.trim(), "role": form.role},
            "errors": {field: message},
        });
        page(&dash, &me, extra, status)
    };
    let Some(email) = normalize_email(&form.email) else {
        return refuse("email", "team.bad_email", StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let role = match Role::parse(form.role.trim()) {
        Some(role) if me.session.role.may_grant(role) => role,
        Some(_) => return refuse("role", "team.bad_role", StatusCode::FORBIDDEN).await,
        None => return refuse("role", "team.bad_role", StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let store = &dash.state().store;
    let user = match store.users().invite(me.live_org_id(), &email, role).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            return refuse("email", "team.email_taken", StatusCode::CONFLICT).await
        }
        Err(e) => return Err(e.into()),
    };
    let link = super::issue_login_link(store, user.id)
        .await
        .map_err(DashError::internal)?;
    tracing::info!(
        org_id = me.live_org_id(),
        member = user.id,
        role = %role,
        by = me.session.user_id,
        "dashboard: member invited"
    );
    let link = format!("{}{link}", origin(&headers));
    let extra = json!({
        "invite_link": link,
        "invited": {"id": user.id, "email": user.email},
        "flash": word(me.lang, "team.invite_hint"),
    });
    page(&dash, &me, extra, StatusCode::OK).await
}

/// The address the browser reached us at (`http://host`, `https://` behind TLS), for links.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"', '<', '>']))
        .unwrap_or("127.0.0.1:8080");
    let scheme = if super::auth::over_tls(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /dashboard/team/{id}/role`.
async fn change_role(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, DashError> {
    let Some(role) = Role::parse(form.role.trim()) else {
        let extra = json!({"error": word(me.lang, "team.bad_role")});
        return page(&dash, &me, extra, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if !me.session.role.may_grant(role) {
        let extra = json!({"error": word(me.lang, "team.bad_role")});
        return page(&dash, &me, extra, StatusCode::FORBIDDEN).await;
    }
    change(&dash, &me, &id, TeamChange::Role(role), "role_changed").await
}

/// `POST /dashboard/team/{id}/remove`.
async fn remove(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    change(&dash, &me, &id, TeamChange::Remove, "member_removed").await
}

/// Applies `what` to member `id` when the rules allow it; on to the team page with `done`.
async fn change(
    dash: &Dashboard,
    me: &Signed,
    id: &str,
    what: TeamChange,
    done: &str,
) -> Result<Response, DashError> {
    let id = path_id(id)?;
    let store = &dash.state().store;
    let member = store
        .users()
        .user_in_org(me.live_org_id(), id)
        .await?
        .filter(|m| m.disabled_at.is_none())
        .ok_or(DashError::NotFound)?;
    let refused = if member.id == me.session.user_id {
        Some("team.not_self")
    } else if !me.session.role.may_manage(member.role) {
        Some("team.not_owner")
    } else {
        None
    };
    if let Some(key) = refused {
        let extra = json!({"error": word(me.lang, key)});
        return page(dash, me, extra, StatusCode::FORBIDDEN).await;
    }
    match store
        .users()
        .change_member(me.live_org_id(), member.id, member.role, what)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(why)) => {
            let key = if why == LAST_OWNER {
                "team.last_owner"
            } else {
                "team.changed_meanwhile"
            };
            let extra = json!({"error": word(me.lang, key)});
            return page(dash, me, extra, StatusCode::CONFLICT).await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        org_id = me.live_org_id(),
        member = member.id,
        change = ?what,
        by = me.session.user_id,
        "dashboard: team changed"
    );
    Ok(see_other(&format!("/dashboard/team?done={done}")))
}

/// `GET /dashboard/password`.
async fn password_form(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    dash.page(&me, "password.html", "password", json!({"errors": {}}))
        .await
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

/// `POST /dashboard/password`: sets the signed-in user's password; one they already have
/// must be given first.
async fn set_password(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let user = store
        .users()
        .user_in_org(me.live_org_id(), me.session.user_id)
        .await?
        .ok_or(DashError::NotFound)?;
    let error = if form.password.chars().count() < MIN_PASSWORD_CHARS {
        Some(("password", "password.too_short"))
    } else if form.password != form.again {
        Some(("again", "password.differ"))
    } else {
        None
    };
    let error = match (error, user.password_hash) {
        (Some(e), _) => Some(e),
        (None, None) => None,
        (None, Some(hash)) => {
            let current = form.current.clone();
            let matches =
                tokio::task::spawn_blocking(move || super::auth::verify_password(&current, &hash))
                    .await
                    .map_err(DashError::internal)?;
            (!matches).then_some(("current", "password.wrong"))
        }
    };
    if let Some((field, key)) = error {
        let extra = json!({"errors": {field: word(me.lang, key)}});
        let mut page = dash.page(&me, "password.html", "password", extra).await?;
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(page);
    }
    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || super::hash_password(&password))
        .await
        .map_err(DashError::internal)?
        .map_err(DashError::internal)?;
    store.users().set_password(user.id, &hash).await?;
    tracing::info!(user = user.id, "dashboard: password set");
    Ok(see_other("/dashboard/?done=password_set"))
}

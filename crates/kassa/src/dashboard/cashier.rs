//! The cashier page: the organization's Kaspi cashiers and their sessions' state, and
//! connecting a cashier in the browser (a new phone adds one, a phone of the list re-connects
//! it) — the phone, then whatever Kaspi asks (password, SMS code, confirmation in the app) —
//! through the same [`connect_terminal`] as `kassa terminal connect`.
//!
//! A login in progress lives in the process that started it (a task that waits for each
//! answer, at most [`ANSWER_WAIT`]); behind a load balancer the forms of one login must reach
//! the same process (sticky sessions), which the page says when the login is not found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::response::{Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use kaspi::LoginPrompt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::api::rfc3339_ms;
use crate::gateway::connect_terminal;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("cashier.title", "Кассир Kaspi", "Kaspi cashier"),
    ("cashier.session", "Сессия", "Session"),
    ("cashier.phone", "Телефон кассира", "Cashier's phone"),
    ("cashier.state", "Состояние", "State"),
    ("cashier.reason", "Причина", "Reason"),
    ("cashier.updated", "Изменено", "Changed"),
    ("cashier.none", "Кассир ещё не подключён.", "No cashier is connected yet."),
    ("cashier.several", "Kassa распределяет вызовы Kaspi между кассирами организации: у каждого свой лимит Kaspi. Новый номер добавляет кассира, номер из списка входит заново.", "Kassa spreads its Kaspi calls over the organization's cashiers: each has its own Kaspi limit. A new phone adds a cashier; a phone of the list signs in again."),
    ("cashier.healthy", "работает", "working"),
    ("cashier.needs_login", "нужен вход", "must sign in"),
    ("cashier.what_to_do", "Что делать: войдите как кассир ниже — номер, затем пароль или код из SMS.", "What to do: sign the cashier in below: the phone, then the password or the SMS code."),
    ("cashier.connect", "Подключить кассира", "Connect the cashier"),
    ("cashier.connect_hint", "Номер кассира вашей организации в Kaspi Pay. Kaspi спросит пароль, код из SMS или подтверждение в приложении.", "The phone of your organization's cashier in Kaspi Pay. Kaspi asks for the password, an SMS code or a confirmation in the app."),
    ("cashier.start", "Начать вход", "Start signing in"),
    ("cashier.step_starting", "Связываемся с Kaspi…", "Contacting Kaspi…"),
    ("cashier.step_password", "Kaspi просит пароль кассира.", "Kaspi asks for the cashier's password."),
    ("cashier.step_sms", "Kaspi отправил код в SMS на телефон кассира.", "Kaspi sent a code by SMS to the cashier's phone."),
    ("cashier.step_sms_retry", "Код не подошёл — введите код из нового SMS.", "The code was wrong: enter the code of the new SMS."),
    ("cashier.step_app", "Подтвердите вход в приложении Kaspi Pay на телефоне кассира, затем нажмите «Подтверждено».", "Confirm the sign-in in the cashier's Kaspi Pay app, then press Confirmed."),
    ("cashier.step_done", "Кассир подключён.", "The cashier is connected."),
    ("cashier.step_failed", "Вход не удался", "Signing in failed"),
    ("cashier.answer", "Ответ", "Answer"),
    ("cashier.send", "Отправить", "Send"),
    ("cashier.confirmed", "Подтверждено", "Confirmed"),
    ("cashier.sandbox_confirm", "Подтвердить в приложении песочницы", "Confirm in the sandbox app"),
    ("cashier.sandbox_hint", "Песочница: пароль «sandbox», последний код SMS:", "Sandbox: the password is “sandbox”, the last SMS code is"),
    ("cashier.lost", "Этот вход ведёт другой процесс Kassa или он устарел: начните заново.", "This sign-in is held by another Kassa process or has expired: start again."),
    ("done.cashier_started", "Вход начат.", "Signing in has started."),
    ("done.cashier_answered", "Ответ отправлен.", "The answer was sent."),
];

/// How long a login waits for each answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10 * 60);
/// How long a form waits for Kaspi's next question before showing the page.
const STEP_WAIT: Duration = Duration::from_secs(20);

/// Where a login is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Starting,
    Password,
    Sms { retry: bool },
    App,
    Done,
    Failed(String),
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Starting => "starting",
            Step::Password => "password",
            Step::Sms { retry: false } => "sms",
            Step::Sms { retry: true } => "sms_retry",
            Step::App => "app",
            Step::Done => "done",
            Step::Failed(_) => "failed",
        }
    }

    fn waits_for_answer(&self) -> bool {
        matches!(self, Step::Password | Step::Sms { .. } | Step::App)
    }
}

/// One login in progress: the question asked (with a number that grows at every question)
/// and where the answers go.
struct Flow {
    phone: String,
    asked: watch::Receiver<(u64, Step)>,
    answers: mpsc::Sender<String>,
}

/// Logins in progress, by organization.
#[derive(Default)]
pub(super) struct Connects(Mutex<HashMap<i64, Arc<Flow>>>);

impl Connects {
    fn get(&self, org_id: i64) -> Option<Arc<Flow>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org_id)
            .cloned()
    }

    fn put(&self, org_id: i64, flow: Arc<Flow>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org_id, flow);
    }
}

/// Asks the browser: each question is published, each answer awaited.
struct WebPrompt {
    asked: watch::Sender<(u64, Step)>,
    answers: mpsc::Receiver<String>,
}

impl WebPrompt {
    async fn ask(&mut self, step: Step) -> Result<String, String> {
        self.asked.send_modify(|(n, s)| {
            *n += 1;
            *s = step;
        });
        match tokio::time::timeout(ANSWER_WAIT, self.answers.recv()).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err("the sign-in was started again".into()),
            Err(_) => Err("no answer within 10 minutes".into()),
        }
    }
}

impl LoginPrompt for WebPrompt {
    async fn password(&mut self) -> Result<String, String> {
        self.ask(Step::Password).await
    }

    async fn sms_code(&mut self, retry: bool) -> Result<String, String> {
        self.ask(Step::Sms { retry }).await
    }

    async fn confirm_in_app(&mut self) -> Result<(), String> {
        self.ask(Step::App).await.map(|_| ())
    }
}

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/cashier", get(show))
        .route("/cashier/step", get(step))
        .route("/cashier/connect", post(connect))
        .route("/cashier/answer", post(answer))
}

async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let cashiers: Vec<Value> = store
        .orgs()
        .terminals_for_org(me.org_id())
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "phone": crate::cli::mask_phone(&t.phone),
                "healthy": t.state == crate::domain::TerminalState::Active && t.session_sealed.is_some(),
                "state": t.state.as_str(),
                "reason": t.state_reason,
                "updated_at": rfc3339_ms(t.updated_at),
            })
        })
        .collect();
    let healthy = |c: &Value| c["healthy"] == json!(true);
    let usable = cashiers.iter().any(healthy);
    let all_healthy = cashiers.iter().all(healthy);
    let flow = dash.inner.connects.get(me.org_id());
    let (flow_json, sandbox_sms) = match &flow {
        Some(flow) => {
            let (_, step) = flow.asked.borrow().clone();
            let failed = match &step {
                Step::Failed(why) => Some(why.clone()),
                _ => None,
            };
            let sms = me
                .sandbox
                .then(|| {
                    dash.state()
                        .gateway
                        .terminals()
                        .sandbox()
                        .sim
                        .last_sms(&flow.phone)
                })
                .flatten();
            (
                json!({
                    "step": step.name(),
                    "waits": step.waits_for_answer(),
                    "failed": failed,
                    "phone": crate::cli::mask_phone(&flow.phone),
                }),
                sms,
            )
        }
        None => (Value::Null, None),
    };
    dash.page(
        &me,
        "cashier.html",
        "cashier",
        json!({
            "cashiers": cashiers,
            "usable": usable,
            "all_healthy": all_healthy,
            "flow": flow_json,
            "sandbox_sms": sandbox_sms,
        }),
    )
    .await
}

/// `GET /dashboard/cashier/step`: `{"status": <step>}` for the page's script.
async fn step(State(dash): State<Dashboard>, Extension(me): Extension<Signed>) -> Json<Value> {
    let step = dash
        .inner
        .connects
        .get(me.org_id())
        .map(|f| f.asked.borrow().1.name());
    Json(json!({"status": step}))
}

#[derive(Debug, Deserialize)]
pub(super) struct ConnectForm {
    #[serde(default)]
    phone_number: String,
}

/// Waits until the login asks its next question (or ends), at most [`STEP_WAIT`].
async fn next_question(flow: &Flow, after: u64) {
    let mut asked = flow.asked.clone();
    let _ = tokio::time::timeout(
        STEP_WAIT,
        asked.wait_for(|(n, step)| *n > after || matches!(step, Step::Done | Step::Failed(_))),
    )
    .await;
}

/// `POST /dashboard/cashier/connect`: starts a login with the phone (a login already under way
/// for the organization is dropped).
async fn connect(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<ConnectForm>,
) -> Result<Response, DashError> {
    let phone = match kaspi::phone::normalize(form.phone_number.trim()) {
        Ok(phone) => phone,
        Err(_) => {
            let mut page = dash
                .page(
                    &me,
                    "cashier.html",
                    "cashier",
                    json!({
                        "errors": {"phone_number": "The phone number must be a Kazakhstan mobile number, e.g. 87001234567."},
                        "form": {"phone_number": form.phone_number},
                    }),
                )
                .await?;
            *page.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(page);
        }
    };
    let (asked_tx, asked_rx) = watch::channel((0, Step::Starting));
    let (answers_tx, answers_rx) = mpsc::channel(4);
    let flow = Arc::new(Flow {
        phone: phone.as_str().to_owned(),
        asked: asked_rx,
        answers: answers_tx,
    });
    dash.inner.connects.put(me.org_id(), flow.clone());
    let state = dash.state().clone();
    let org_id = me.org_id();
    // The login runs on past this request: the cashier it connects is still the user's change.
    let actor = crate::audit::current();
    tokio::spawn(async move {
        let mut prompt = WebPrompt {
            asked: asked_tx,
            answers: answers_rx,
        };
        let connect = async {
            // A test mode's cashier logs in to the sandbox Kaspi, any other to the deployment's.
            let config = state
                .gateway
                .terminals()
                .client_config_for(org_id)
                .await?
                .clone();
            connect_terminal(
                &state.store,
                &state.master_key,
                config,
                org_id,
                &phone,
                &mut prompt,
            )
            .await
        };
        let result = match actor {
            Some(actor) => crate::audit::acting(actor, connect).await,
            None => connect.await,
        };
        let end = match result {
            Ok(_) => Step::Done,
            Err(e) => {
                tracing::warn!(org_id, error = %e, "cashier sign-in from the dashboard failed");
                Step::Failed(e.to_string())
            }
        };
        prompt.asked.send_modify(|(n, s)| {
            *n += 1;
            *s = end;
        });
    });
    next_question(&flow, 0).await;
    Ok(see_other("/dashboard/cashier?done=cashier_started"))
}

#[derive(Debug, Deserialize)]
pub(super) struct AnswerForm {
    #[serde(default)]
    answer: String,
    /// `sandbox`: confirm in the sandbox's app first (sandbox mode only).
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /dashboard/cashier/answer`: the answer to the login's question.
async fn answer(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<AnswerForm>,
) -> Result<Response, DashError> {
    let Some(flow) = dash.inner.connects.get(me.org_id()) else {
        return dash
            .page(&me, "cashier.html", "cashier", json!({"lost": true}))
            .await;
    };
    let (asked_at, step) = flow.asked.borrow().clone();
    if !step.waits_for_answer() {
        return Ok(see_other("/dashboard/cashier"));
    }
    if step == Step::App && form.confirm.as_deref() == Some("sandbox") && me.sandbox {
        dash.state()
            .gateway
            .terminals()
            .sandbox()
            .sim
            .confirm_in_app(&flow.phone)
            .map_err(DashError::internal)?;
    }
    if flow
        .answers
        .send(form.answer.trim().to_owned())
        .await
        .is_err()
    {
        return dash
            .page(&me, "cashier.html", "cashier", json!({"lost": true}))
            .await;
    }
    next_question(&flow, asked_at).await;
    Ok(see_other("/dashboard/cashier?done=cashier_answered"))
}

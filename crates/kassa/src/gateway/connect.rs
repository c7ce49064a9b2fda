//! Logging a Kaspi cashier in for an organization, and the sealing of each cashier's device
//! and session in the store.
//!
//! A login of a new phone adds a cashier to the organization; a login of a phone it has
//! re-logs that cashier, reusing its device identity so Kaspi sees one device per cashier and
//! one cashier's login never evicts another's. All of an organization's cashiers must be
//! cashiers of one Kaspi organization (Kassa spreads the organization's calls over them, and
//! they must all see its operations): a login into another one is refused.
//!
//! **Sealing contexts.** The device and session are sealed with a context naming what they
//! belong to, so a blob cannot be moved to another row. Rows from before several cashiers were
//! sealed per organization (`terminal-device:{org}`, `terminal-session:{org}`); they stay
//! readable as they are (`Terminal::sealed_per_cashier` is false) and keep working, refreshes
//! included. Every login seals per cashier (`terminal-device:{org}:{phone}`,
//! `terminal-session:{org}:{phone}`): the phone, not the row id, since the blobs are sealed
//! before the row exists, and a cashier's phone never changes within its row.

use std::time::Duration;

use kaspi::{Client, ClientConfig, DeviceIdentity, LoginPrompt, Phone, Session};

use super::app_build::AppBuild;
use super::GatewayError;
use crate::secrets::MasterKey;
use crate::store::{JobKind, Store, Terminal};

/// The sealing context of a cashier's `kind` of secret (`device`, `session`).
fn context(kind: &str, org_id: i64, phone: &str, per_cashier: bool) -> String {
    if per_cashier {
        format!("terminal-{kind}:{org_id}:{phone}")
    } else {
        format!("terminal-{kind}:{org_id}")
    }
}

/// The context `kind` of secret of `terminal`'s row is sealed with.
fn context_of(kind: &str, terminal: &Terminal) -> String {
    context(
        kind,
        terminal.org_id,
        &terminal.phone,
        terminal.sealed_per_cashier,
    )
}

/// Logs the cashier with `phone` in for `org_id` (asking `prompt` for the password, SMS code or
/// app confirmation) and stores the device and session, sealed: a new cashier of the
/// organization, or a new session of the cashier it has with that phone.
pub async fn connect_terminal(
    store: &Store,
    master_key: &MasterKey,
    client_config: ClientConfig,
    org_id: i64,
    phone: &Phone,
    prompt: &mut impl LoginPrompt,
) -> Result<Terminal, GatewayError> {
    // The app build stored by `kassa kaspi app-build set`, also in a process that only logs in.
    AppBuild::new(client_config.app.clone(), Duration::ZERO)
        .sync(store)
        .await?;
    let cashiers = store.orgs().terminals_for_org(org_id).await?;
    let device = match cashiers.iter().find(|t| t.phone == phone.as_str()) {
        Some(t) => open_device(master_key, t)?,
        None => DeviceIdentity::generate(),
    };
    let client = Client::new(client_config, device).map_err(GatewayError::from_kaspi)?;
    let session = client
        .login(phone, prompt)
        .await
        .map_err(GatewayError::from_kaspi)?;
    same_kaspi_organization(master_key, &cashiers, phone, &session)?;
    let device_sealed = master_key.seal(
        client.device().to_json().as_bytes(),
        &context("device", org_id, phone.as_str(), true),
    );
    let session_sealed = master_key.seal(
        session.to_json().as_bytes(),
        &context("session", org_id, phone.as_str(), true),
    );
    let terminal = store
        .orgs()
        .upsert_terminal(
            org_id,
            phone.as_str(),
            &device_sealed,
            Some(&session_sealed),
            crate::store::TerminalState::Active,
        )
        .await?;
    // Work that waited for this login resumes: the history sync (which settles open invoices)
    // runs at once.
    let now = store.now_ms();
    store
        .jobs()
        .pull_job_forward(JobKind::SyncHistory, org_id, now, now)
        .await?;
    tracing::info!(
        org_id,
        terminal = terminal.id,
        new_cashier = terminal.version == 1,
        "cashier logged in to Kaspi"
    );
    Ok(terminal)
}

/// Refuses a login of `phone` into another Kaspi organization than the organization's other
/// cashiers' (as far as their stored sessions tell).
fn same_kaspi_organization(
    master_key: &MasterKey,
    cashiers: &[Terminal],
    phone: &Phone,
    session: &Session,
) -> Result<(), GatewayError> {
    let Some(new_org) = session.org.organization_id.as_deref() else {
        return Ok(());
    };
    for other in cashiers.iter().filter(|t| t.phone != phone.as_str()) {
        let Some(sealed) = other.session_sealed.as_deref() else {
            continue;
        };
        let Ok(theirs) = open_session(master_key, other, sealed) else {
            continue;
        };
        if let Some(their_org) = theirs.org.organization_id.as_deref() {
            if their_org != new_org {
                return Err(GatewayError::LoginFailed(format!(
                    "cashier {} is a cashier of another Kaspi organization ({}) than this \
                     organization's cashier {} ({}): all of an organization's cashiers must be \
                     cashiers of one Kaspi organization, since Kassa spreads its Kaspi calls \
                     over them; add the phone as a cashier of that organization in Kaspi Pay, \
                     or connect it to another organization of Kassa",
                    crate::cli::mask_phone(phone.as_str()),
                    session.org.organization_name.as_deref().unwrap_or(new_org),
                    crate::cli::mask_phone(&other.phone),
                    theirs.org.organization_name.as_deref().unwrap_or(their_org),
                )));
            }
        }
    }
    Ok(())
}

/// Opens the sealed JSON secret `kind` of cashier `terminal`; errors name it (never its
/// content).
fn open_sealed(
    master_key: &MasterKey,
    terminal: &Terminal,
    kind: &str,
    sealed: &[u8],
) -> Result<(String, String), GatewayError> {
    let what = format!(
        "{kind} of cashier {} of org {}",
        terminal.id, terminal.org_id
    );
    let bytes = master_key
        .open(sealed, &context_of(kind, terminal))
        .map_err(|e| GatewayError::Internal(format!("{what}: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, what)),
        Err(_) => Err(GatewayError::Internal(format!("{what}: not UTF-8"))),
    }
}

/// The device identity of cashier `terminal`.
pub(super) fn open_device(
    master_key: &MasterKey,
    terminal: &Terminal,
) -> Result<DeviceIdentity, GatewayError> {
    let (text, what) = open_sealed(master_key, terminal, "device", &terminal.device_sealed)?;
    DeviceIdentity::from_json(&text).map_err(|e| GatewayError::Internal(format!("{what}: {e}")))
}

/// The session `sealed` of cashier `terminal`.
pub(super) fn open_session(
    master_key: &MasterKey,
    terminal: &Terminal,
    sealed: &[u8],
) -> Result<Session, GatewayError> {
    let (text, what) = open_sealed(master_key, terminal, "session", sealed)?;
    // The serde error could quote the session's text: say only that it is unreadable.
    Session::from_json(&text).map_err(|_| GatewayError::Internal(format!("{what}: unreadable")))
}

/// `session` sealed for cashier `terminal`'s row as it is sealed now (a refresh keeps the
/// row's context; only a login moves a row to per-cashier sealing, both blobs at once).
pub(super) fn seal_session(
    master_key: &MasterKey,
    terminal: &Terminal,
    session: &Session,
) -> Vec<u8> {
    master_key.seal(
        session.to_json().as_bytes(),
        &context_of("session", terminal),
    )
}

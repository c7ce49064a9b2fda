//! The organizations' Kaspi cashiers (terminals): several per organization, one per cashier
//! phone (`migrations/*/0016_cashiers.sql`), each with its sealed device and session and a
//! `version` that processes update with compare-and-set.

use crate::db::{DbError, Row, Value};
use crate::store::OrgRepo;

use super::audit::{note, Change};
use super::{StoreError, Terminal, TerminalState};

const TERMINAL_COLUMNS: &str = "id, org_id, phone, device_sealed, session_sealed, state, \
     state_reason, version, updated_at, sealed_per_cashier";

fn terminal_from_row(row: &Row) -> Result<Terminal, DbError> {
    Ok(Terminal {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        phone: row.text("phone")?,
        device_sealed: row.bytes("device_sealed")?,
        session_sealed: row.opt_bytes("session_sealed")?,
        state: row.parsed("state", TerminalState::parse)?,
        state_reason: row.opt_text("state_reason")?,
        version: row.i64("version")?,
        updated_at: row.i64("updated_at")?,
        sealed_per_cashier: row.i64("sealed_per_cashier")? != 0,
    })
}

impl OrgRepo {
    /// Adds cashier `phone` to `org_id`, or replaces the device and session of that cashier
    /// (a new login of the same phone) and bumps its version. What is sealed here is sealed
    /// per cashier (`Terminal::sealed_per_cashier`).
    pub async fn upsert_terminal(
        &self,
        org_id: i64,
        phone: &str,
        device_sealed: &[u8],
        session_sealed: Option<&[u8]>,
        state: TerminalState,
    ) -> Result<Terminal, StoreError> {
        let phone = phone.to_owned();
        let device = device_sealed.to_vec();
        let session = session_sealed.map(<[u8]>::to_vec);
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO terminals \
             (org_id, phone, device_sealed, session_sealed, state, state_reason, version, \
              updated_at, sealed_per_cashier) \
             VALUES ($1, $2, $3, $4, $5, NULL, 1, $6, 1) \
             ON CONFLICT (org_id, phone) DO UPDATE SET \
             device_sealed = excluded.device_sealed, session_sealed = excluded.session_sealed, \
             state = excluded.state, state_reason = NULL, version = terminals.version + 1, \
             updated_at = excluded.updated_at, sealed_per_cashier = 1 \
             RETURNING {TERMINAL_COLUMNS}"
        );
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let params: [Value; 6] = [
                    org_id.into(),
                    (&phone).into(),
                    device.clone().into(),
                    session.clone().into(),
                    state.as_str().into(),
                    now.into(),
                ];
                let terminal = terminal_from_row(&tx.query_one(&sql, &params)?)?;
                let change = Change::new(
                    org_id,
                    "cashier.connected",
                    format_args!("cashier:{}", crate::domain::mask_phone(&phone)),
                )
                .with(serde_json::json!({ "state": state.as_str() }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(terminal)
            })
            .await
    }

    /// The cashiers of `org_id`, in the order they were first connected.
    pub async fn terminals_for_org(&self, org_id: i64) -> Result<Vec<Terminal>, StoreError> {
        // Read before every Kaspi call: one statement on its own (see `Db::query`).
        let sql = format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE org_id = $1 ORDER BY id");
        let rows = self.db.query(sql, vec![org_id.into()]).await?;
        Ok(rows
            .iter()
            .map(terminal_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The first cashier connected for `org_id`, if any (the one of an organization that has
    /// one; see [`OrgRepo::terminals_for_org`] for all).
    pub async fn terminal_for_org(&self, org_id: i64) -> Result<Option<Terminal>, StoreError> {
        Ok(self.terminals_for_org(org_id).await?.into_iter().next())
    }

    /// Every cashier, by organization, then in the order they were connected.
    pub async fn list_terminals(&self) -> Result<Vec<Terminal>, StoreError> {
        let sql = format!("SELECT {TERMINAL_COLUMNS} FROM terminals ORDER BY org_id, id");
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &[])?;
                Ok(rows
                    .iter()
                    .map(terminal_from_row)
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Removes cashier `phone` of `org_id`; `false` when it has no such cashier. Invoices it
    /// created are then served by the organization's other cashiers.
    pub async fn delete_terminal(&self, org_id: i64, phone: &str) -> Result<bool, StoreError> {
        let phone = phone.to_owned();
        let actor = crate::audit::current();
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                let deleted = tx.execute(
                    "DELETE FROM terminals WHERE org_id = $1 AND phone = $2",
                    &[org_id.into(), (&phone).into()],
                )?;
                if deleted == 1 {
                    let change = Change::new(
                        org_id,
                        "cashier.removed",
                        format_args!("cashier:{}", crate::domain::mask_phone(&phone)),
                    );
                    note(tx, actor.as_ref(), now, &change)?;
                }
                Ok(deleted == 1)
            })
            .await
    }

    /// Replaces the session of cashier `terminal_id` if its version is still
    /// `expected_version` (and bumps it); `false` when another process changed it first or
    /// the cashier is gone.
    pub async fn update_terminal_session(
        &self,
        terminal_id: i64,
        expected_version: i64,
        session_sealed: Option<&[u8]>,
        state: TerminalState,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let session = session_sealed.map(<[u8]>::to_vec);
        let reason = reason.map(str::to_owned);
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE terminals SET session_sealed = $3, state = $4, state_reason = $5, \
                     version = version + 1, updated_at = $6 \
                     WHERE id = $1 AND version = $2",
                    &[
                        terminal_id.into(),
                        expected_version.into(),
                        session.clone().into(),
                        state.as_str().into(),
                        reason.as_ref().into(),
                        now.into(),
                    ],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// The cashier (terminal id) whose call created invoice `invoice_id` of `org_id` at
    /// Kaspi, when it is known (invoices found in Kaspi's history, and those from before
    /// several cashiers, have none).
    pub async fn invoice_terminal(
        &self,
        org_id: i64,
        invoice_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self
            .db
            .query_opt(
                "SELECT terminal_id FROM invoices WHERE id = $1 AND org_id = $2".to_owned(),
                vec![invoice_id.into(), org_id.into()],
            )
            .await?;
        Ok(match row {
            Some(row) => row.opt_i64("terminal_id")?,
            None => None,
        })
    }
}

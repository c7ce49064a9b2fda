//! First start in sandbox mode: an empty database gets an organization `demo` whose cashier is
//! logged in to the sandbox Kaspi, so the API can be tried at once with a new key. The
//! sandbox's login questions answered by the simulator ([`SandboxPrompt`]) serve the test
//! modes' cashiers too (`terminals.rs`).
//!
//! The sandbox Kaspi keeps its state in the data dir, so a restart needs nothing more: the
//! cashier's session, pending invoices and paid ones all carry on. Only a sandbox that lost
//! that state (a data dir from before it was kept, or the file removed) is brought back to
//! something usable.

use kaspi::LoginPrompt;

use super::{Gateway, GatewayError};
use crate::store::{InvoiceStatus, Organization, StoreError};

/// The slug of the organization made on first start in sandbox mode.
pub const DEMO_ORG_SLUG: &str = "demo";
/// The sandbox cashier of the demo organization.
pub const DEMO_CASHIER_PHONE: &str = "7000000001";

/// Answers the sandbox Kaspi's login questions from the simulator itself (its password, the
/// SMS it "sent", the app confirmation).
pub struct SandboxPrompt {
    pub sim: kaspi_sim::Simulator,
    pub phone: String,
}

impl LoginPrompt for SandboxPrompt {
    async fn password(&mut self) -> Result<String, String> {
        Ok(kaspi_sim::DEFAULT_PASSWORD.into())
    }

    async fn sms_code(&mut self, _retry: bool) -> Result<String, String> {
        self.sim
            .last_sms(&self.phone)
            .ok_or_else(|| "the sandbox sent no SMS".into())
    }

    async fn confirm_in_app(&mut self) -> Result<(), String> {
        self.sim
            .confirm_in_app(&self.phone)
            .map_err(|e| e.to_string())
    }
}

impl Gateway {
    /// The sandbox Kaspi started without its saved state while the database has organizations
    /// working against it: it knows none of their sessions or operations. Every such cashier
    /// logs in to it again, and sandbox invoices still pending are expired (no payer can reach
    /// them), with their events.
    async fn recover_lost_sandbox(&self) -> Result<(), GatewayError> {
        let started = self.now_ms();
        let mut cashiers = Vec::new();
        for terminal in self.store().orgs().list_terminals().await? {
            if self.terminals().uses_sandbox(terminal.org_id).await? {
                cashiers.push(terminal);
            }
        }
        if cashiers.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            "the sandbox Kaspi's saved state is missing: logging its cashiers in again and \
             expiring the invoices it no longer knows"
        );
        for terminal in cashiers {
            self.terminals()
                .sandbox_login(terminal.org_id, &terminal.phone)
                .await?;
        }
        let stale = self
            .store()
            .invoices()
            .pending_sandbox_invoices(started)
            .await?;
        for id in &stale {
            self.store()
                .invoices()
                .apply_status(
                    *id,
                    InvoiceStatus::Expired,
                    Some("SandboxStateLost"),
                    started,
                    None,
                )
                .await?;
        }
        if !stale.is_empty() {
            tracing::info!(
                count = stale.len(),
                "expired pending sandbox invoices the sandbox Kaspi no longer knows"
            );
        }
        Ok(())
    }

    /// On start: in a sandbox deployment with no organization yet, makes `demo` and logs its
    /// cashier in to the sandbox. `Some` when it did; `None` when there was nothing to do (or
    /// another process did it first). A sandbox Kaspi that lost its state is recovered.
    pub async fn bootstrap_sandbox(&self) -> Result<Option<Organization>, GatewayError> {
        if !self.store().orgs().list_orgs().await?.is_empty() {
            if !self.terminals().sandbox().sim.restored() {
                self.recover_lost_sandbox().await?;
            }
            return Ok(None);
        }
        if !self.terminals().sandbox_deployment() {
            return Ok(None);
        }
        let org = match self
            .store()
            .orgs()
            .create_org(DEMO_ORG_SLUG, "Demo shop")
            .await
        {
            Ok(org) => org,
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.terminals()
            .sandbox_login(org.id, DEMO_CASHIER_PHONE)
            .await?;
        Ok(Some(org))
    }
}

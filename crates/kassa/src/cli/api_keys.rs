//! `kassa api-key …`: an organization's API keys, live and test. A test key belongs to the
//! organization's test mode (its twin, made by the first test key: `store::orgs`), so it
//! sees only test data and reaches the sandbox Kaspi; its cashier is logged in to the sandbox
//! by the running server when the twin first needs Kaspi. Keys are shown once and kept only
//! hashed.

use anyhow::{bail, Context as _};
use clap::Subcommand;

use super::{find_org, load_master_key, open, print_out, table, when, Slug};
use crate::config::{ServeArgs, StorageArgs};
use crate::domain::{Mode, Scopes};
use crate::store::{ApiKeyRecord, Organization, Store};

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; prints the key alone on stdout. It is shown only this once.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// A name to tell the key apart in lists.
        #[arg(long, default_value = "")]
        name: String,
        /// What the key may do, `resource:action` (repeat for several): invoices, refunds,
        /// subscriptions, catalog or webhooks, each `read` or `write` (write includes read).
        /// Without it the key may do everything.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = crate::domain::Scope::parse)]
        scopes: Vec<crate::domain::Scope>,
        /// `live` (real Kaspi, `kassa_live_…`) or `test` (the sandbox Kaspi and test data
        /// only, `kassa_test_…`; the organization's test mode is made by its first test key).
        #[arg(long, default_value = "live")]
        mode: Mode,
    },
    /// List an organization's API keys, live and test (their prefixes; the keys themselves
    /// are not kept).
    List {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
    },
    /// Revoke an API key (live or test); running servers refuse it within half a second.
    Revoke {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The key's id or prefix, as `kassa api-key list` shows them.
        key: String,
    },
}

/// A key's scopes in one table cell: `all`, or the shortest list joined by commas.
fn scope_list(scopes: Scopes) -> String {
    if scopes.is_all() {
        return "all".to_owned();
    }
    let names: Vec<String> = scopes.shortest().iter().map(|s| s.to_string()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    }
}

/// `kassa api-key …`.
pub async fn run_api_key(storage: &StorageArgs, command: ApiKeyCommand) -> anyhow::Result<()> {
    let (config, store) = open(storage, &ServeArgs::default()).await?;
    match command {
        ApiKeyCommand::Create {
            org,
            name,
            scopes,
            mode,
        } => {
            let org = find_org(&store, &org).await?;
            let master_key = load_master_key(&config)?;
            let scopes = if scopes.is_empty() {
                Scopes::ALL
            } else {
                scopes.into_iter().fold(Scopes::NONE, Scopes::with)
            };
            let owner = match mode {
                Mode::Live => org.clone(),
                Mode::Test => {
                    let (twin, made) = store
                        .orgs()
                        .make_test_twin(org.id)
                        .await
                        .context("making the organization's test mode")?;
                    if made {
                        eprintln!(
                            "made the test mode of organization {}: its test keys see only \
                             test data and reach the sandbox Kaspi of the running server",
                            org.slug
                        );
                    }
                    twin
                }
            };
            let (raw, prefix) = crate::secrets::new_api_key_for(mode);
            let record = store
                .orgs()
                .create_scoped_api_key(
                    owner.id,
                    &name,
                    &prefix,
                    &master_key.api_key_hash(&raw),
                    scopes,
                )
                .await
                .context("storing the API key")?;
            print_out(&format!("{raw}\n"))?;
            eprintln!(
                "{mode} API key {prefix}… (id {}) of organization {}, scopes {}: it is shown \
                 only this once, keep it now",
                record.id,
                org.slug,
                scope_list(record.scopes)
            );
        }
        ApiKeyCommand::List { org } => {
            let org = find_org(&store, &org).await?;
            let keys = keys_of(&store, &org).await?;
            if keys.is_empty() {
                eprintln!(
                    "organization {} has no API keys; make one with `kassa api-key create --org {}`",
                    org.slug, org.slug
                );
                return Ok(());
            }
            let rows = keys
                .into_iter()
                .map(|(mode, k)| {
                    vec![
                        k.id.to_string(),
                        mode.to_string(),
                        if k.name.is_empty() {
                            "-".into()
                        } else {
                            k.name
                        },
                        k.prefix,
                        scope_list(k.scopes),
                        when(k.created_at),
                        k.last_used_at.map_or_else(|| "never".into(), when),
                        k.revoked_at.map_or_else(|| "-".into(), when),
                    ]
                })
                .collect::<Vec<_>>();
            print_out(&table(
                &[
                    "ID",
                    "MODE",
                    "NAME",
                    "PREFIX",
                    "SCOPES",
                    "CREATED",
                    "LAST USED",
                    "REVOKED",
                ],
                &rows,
            ))?;
        }
        ApiKeyCommand::Revoke { org, key } => {
            let org = find_org(&store, &org).await?;
            let mut revoked = store
                .orgs()
                .revoke_api_key(org.id, &key)
                .await
                .context("revoking the API key")?;
            if let Some(twin) = store.orgs().test_twin(org.id).await? {
                revoked += store
                    .orgs()
                    .revoke_api_key(twin.id, &key)
                    .await
                    .context("revoking the API key")?;
            }
            if revoked == 0 {
                bail!(
                    "organization {} has no active API key with the id or prefix `{key}` \
                     (see `kassa api-key list --org {}`)",
                    org.slug,
                    org.slug
                );
            }
            eprintln!(
                "revoked {revoked} API key{} of organization {}",
                if revoked == 1 { "" } else { "s" },
                org.slug
            );
        }
    }
    Ok(())
}

/// The keys of `org` and of its test mode, with their mode, oldest first.
async fn keys_of(store: &Store, org: &Organization) -> anyhow::Result<Vec<(Mode, ApiKeyRecord)>> {
    let mut keys: Vec<(Mode, ApiKeyRecord)> = store
        .orgs()
        .list_api_keys(org.id)
        .await
        .context("listing API keys")?
        .into_iter()
        .map(|k| (Mode::Live, k))
        .collect();
    if let Some(twin) = store.orgs().test_twin(org.id).await? {
        keys.extend(
            store
                .orgs()
                .list_api_keys(twin.id)
                .await
                .context("listing API keys")?
                .into_iter()
                .map(|k| (Mode::Test, k)),
        );
    }
    keys.sort_by_key(|(_, k)| k.id);
    Ok(keys)
}

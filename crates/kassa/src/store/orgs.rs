//! Organizations and their API keys (their Kaspi cashiers are in `cashiers.rs`).

use crate::db::{DbError, Row, Value};
use crate::domain::Scopes;
use crate::store::OrgRepo;

use super::audit::{note, Change};
use super::{conflict_on_unique, ApiKeyOwner, ApiKeyRecord, Organization, StoreError};

const ORG_COLUMNS: &str = "id, slug, name, created_at, live_org_id";

/// What a test twin's slug adds to its live organization's: a `.` no slug of a person has
/// (`kassa org create` takes letters, digits and `-`), so it can never be taken first.
pub const TEST_SLUG_SUFFIX: &str = ".test";
const KEY_COLUMNS: &str = "id, org_id, name, prefix, scopes, created_at, revoked_at, last_used_at";

fn org_from_row(row: &Row) -> Result<Organization, DbError> {
    Ok(Organization {
        id: row.i64("id")?,
        slug: row.text("slug")?,
        name: row.text("name")?,
        created_at: row.i64("created_at")?,
        live_org_id: row.opt_i64("live_org_id")?,
    })
}

fn key_from_row(row: &Row) -> Result<ApiKeyRecord, DbError> {
    Ok(ApiKeyRecord {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        scopes: scopes_from_row(row)?,
        created_at: row.i64("created_at")?,
        revoked_at: row.opt_i64("revoked_at")?,
        last_used_at: row.opt_i64("last_used_at")?,
    })
}

/// The stored scopes; a value this build cannot read holds none (a newer version's scope must
/// not widen an older build's grant).
fn scopes_from_row(row: &Row) -> Result<Scopes, DbError> {
    let text = row.text("scopes")?;
    Ok(Scopes::parse(&text).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "an API key has scopes this build does not know");
        Scopes::NONE
    }))
}

impl OrgRepo {
    /// Creates an organization; [`StoreError::Conflict`] when the slug is taken.
    pub async fn create_org(&self, slug: &str, name: &str) -> Result<Organization, StoreError> {
        let (slug, name, now) = (slug.to_owned(), name.to_owned(), self.now_ms());
        let sql = format!(
            "INSERT INTO organizations (slug, name, created_at) VALUES ($1, $2, $3) \
             RETURNING {ORG_COLUMNS}"
        );
        let actor = crate::audit::current();
        let created = self
            .db
            .write(move |tx| {
                let row = tx.query_one(&sql, &[(&slug).into(), (&name).into(), now.into()])?;
                let org = org_from_row(&row)?;
                let change = Change::new(
                    org.id,
                    "organization.created",
                    format!("organization:{}", org.slug),
                )
                .with(serde_json::json!({ "name": org.name }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(org)
            })
            .await;
        conflict_on_unique(created, "an organization with this slug exists")
    }

    /// The organization with `slug`.
    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<Organization>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE slug = $1");
        let slug = slug.to_owned();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[slug.into()])?;
                Ok(row.as_ref().map(org_from_row).transpose()?)
            })
            .await
    }

    /// The organization with `id`.
    pub async fn org_by_id(&self, id: i64) -> Result<Option<Organization>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1");
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[id.into()])?;
                Ok(row.as_ref().map(org_from_row).transpose()?)
            })
            .await
    }

    /// The test mode (twin) of live organization `live_org_id`, if made.
    pub async fn test_twin(&self, live_org_id: i64) -> Result<Option<Organization>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE live_org_id = $1");
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[live_org_id.into()])?;
                Ok(row.as_ref().map(org_from_row).transpose()?)
            })
            .await
    }

    /// The test mode (twin) of live organization `live_org_id`, made now unless it exists:
    /// slug `{slug}.test`, the same name. `NotFound` when there is no such live organization
    /// (a twin has no twin of its own). The second bool: whether it was made by this call.
    pub async fn make_test_twin(
        &self,
        live_org_id: i64,
    ) -> Result<(Organization, bool), StoreError> {
        let now = self.now_ms();
        let insert = format!(
            "INSERT INTO organizations (slug, name, created_at, live_org_id) \
             SELECT slug || '{TEST_SLUG_SUFFIX}', name, $2, id FROM organizations \
             WHERE id = $1 AND live_org_id IS NULL \
             RETURNING {ORG_COLUMNS}"
        );
        let select = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE live_org_id = $1");
        let actor = crate::audit::current();
        let made = self
            .db
            .write(move |tx| {
                if let Some(row) = tx.query_opt(&select, &[live_org_id.into()])? {
                    return Ok((org_from_row(&row)?, false));
                }
                let twin = match tx.query_opt(&insert, &[live_org_id.into(), now.into()])? {
                    Some(row) => org_from_row(&row)?,
                    None => return Err(StoreError::NotFound),
                };
                // The live organization's change: its log says when its test mode was made.
                let change = Change::new(
                    live_org_id,
                    "organization.test_mode_created",
                    format!("organization:{}", twin.slug),
                )
                .with(serde_json::json!({ "test_org_id": twin.id }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok((twin, true))
            })
            .await;
        match made {
            // Another process made it meanwhile (the unique index on `live_org_id`).
            Err(StoreError::Db(DbError::UniqueViolation { .. })) => self
                .test_twin(live_org_id)
                .await?
                .map(|twin| (twin, false))
                .ok_or(StoreError::NotFound),
            other => other,
        }
    }

    /// All organizations, oldest first.
    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY id");
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &[])?;
                Ok(rows.iter().map(org_from_row).collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Records a new API key of `org_id` holding every scope; see [`Self::create_scoped_api_key`].
    pub async fn create_api_key(
        &self,
        org_id: i64,
        name: &str,
        prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        self.create_scoped_api_key(org_id, name, prefix, key_hash, Scopes::ALL)
            .await
    }

    /// Records a new API key of `org_id` limited to `scopes`, by the hash of the raw key (which
    /// is never stored). [`StoreError::NotFound`] when the organization does not exist,
    /// `Conflict` when the hash is already known.
    pub async fn create_scoped_api_key(
        &self,
        org_id: i64,
        name: &str,
        prefix: &str,
        key_hash: &str,
        scopes: Scopes,
    ) -> Result<ApiKeyRecord, StoreError> {
        let (name, prefix, hash) = (name.to_owned(), prefix.to_owned(), key_hash.to_owned());
        let scopes = scopes.to_string();
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO api_keys (org_id, name, prefix, key_hash, created_at, scopes) \
             SELECT id, $2, $3, $4, $5, $6 FROM organizations WHERE id = $1 \
             RETURNING {KEY_COLUMNS}"
        );
        let actor = crate::audit::current();
        let created = self
            .db
            .write(move |tx| {
                let params: [Value; 6] = [
                    org_id.into(),
                    (&name).into(),
                    (&prefix).into(),
                    (&hash).into(),
                    now.into(),
                    (&scopes).into(),
                ];
                let key = match tx.query_opt(&sql, &params)? {
                    Some(row) => key_from_row(&row)?,
                    None => return Err(StoreError::NotFound),
                };
                // Which side the key is of: a key of a test mode (twin) is a test key.
                let mode = match tx
                    .query_one(
                        "SELECT live_org_id FROM organizations WHERE id = $1",
                        &[org_id.into()],
                    )?
                    .opt_i64("live_org_id")?
                {
                    Some(_) => "test",
                    None => "live",
                };
                let change = Change::new(org_id, "api_key.created", format!("api_key:{}", key.id))
                    .with(serde_json::json!({
                        "name": key.name,
                        "prefix": key.prefix,
                        "scopes": key.scopes.to_string(),
                        "mode": mode,
                    }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(key)
            })
            .await;
        conflict_on_unique(created, "an API key with this hash exists")
    }

    /// Who the unrevoked key with `key_hash` belongs to.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyOwner>, StoreError> {
        let hash = key_hash.to_owned();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT id, org_id, scopes FROM api_keys \
                     WHERE key_hash = $1 AND revoked_at IS NULL",
                    &[hash.into()],
                )?;
                let owner = row
                    .map(|row| -> Result<_, DbError> {
                        Ok(ApiKeyOwner {
                            key_id: row.i64("id")?,
                            org_id: row.i64("org_id")?,
                            scopes: scopes_from_row(&row)?,
                        })
                    })
                    .transpose()?;
                Ok(owner)
            })
            .await
    }

    /// The keys of `org_id`, revoked ones included, oldest first.
    pub async fn list_api_keys(&self, org_id: i64) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY id");
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &[org_id.into()])?;
                Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Revokes the unrevoked keys of `org_id` whose id (when `key` is numeric) or prefix is
    /// `key`; returns how many were revoked. The revocation generation grows in the same
    /// transaction, so every process stops trusting its cached lookups (`api/auth.rs`).
    pub async fn revoke_api_key(&self, org_id: i64, key: &str) -> Result<u64, StoreError> {
        let prefix = key.to_owned();
        let id = key.parse::<i64>().ok();
        let now = self.now_ms();
        let actor = crate::audit::current();
        let revoked = self
            .db
            .write(move |tx| {
                let rows = tx.query(
                    "UPDATE api_keys SET revoked_at = $4 \
                     WHERE org_id = $1 AND revoked_at IS NULL AND (id = $2 OR prefix = $3) \
                     RETURNING id, prefix",
                    &[org_id.into(), id.into(), (&prefix).into(), now.into()],
                )?;
                for row in &rows {
                    let change = Change::new(
                        org_id,
                        "api_key.revoked",
                        format!("api_key:{}", row.i64("id")?),
                    )
                    .with(serde_json::json!({ "prefix": row.text("prefix")? }));
                    note(tx, actor.as_ref(), now, &change)?;
                }
                let revoked = rows.len() as u64;
                if revoked > 0 {
                    tx.execute(
                        "UPDATE api_key_revocations SET generation = generation + 1 WHERE id = 1",
                        &[],
                    )?;
                }
                Ok::<_, StoreError>(revoked)
            })
            .await?;
        if revoked > 0 {
            self.revocations_here
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(revoked)
    }

    /// Notes that the key was used at `at_ms`.
    pub async fn touch_api_key(&self, key_id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                    &[key_id.into(), at_ms.into()],
                )?;
                Ok(())
            })
            .await
    }
}

//! The catalog: items per organization (a deleted item is kept, marked, so the invoices that
//! sold it keep their lines), and their images as PNG bytes, stored once per organization and
//! content.

use super::audit::{note, Change};
use super::{conflict_on_unique, StoreError};
use crate::db::{DbError, Row, Value};
use crate::domain::Money;
use crate::images::StoredImage;
use crate::store::CatalogRepo;
use crate::store::DomainColumns as _;

const ITEM_COLUMNS: &str =
    "id, org_id, name, selling_price, unit_id, image_id, barcode, created_at, updated_at, deleted_at";

/// A catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub selling_price: Money,
    pub unit_id: i64,
    pub image_id: Option<String>,
    pub barcode: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

fn item_from_row(row: &Row) -> Result<CatalogItem, DbError> {
    Ok(CatalogItem {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        name: row.text("name")?,
        selling_price: row.money("selling_price")?,
        unit_id: row.i64("unit_id")?,
        image_id: row.opt_text("image_id")?,
        barcode: row.opt_text("barcode")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        deleted_at: row.opt_i64("deleted_at")?,
    })
}

/// A new item (validated).
#[derive(Debug, Clone)]
pub struct NewCatalogItem {
    pub name: String,
    pub selling_price: Money,
    pub unit_id: i64,
    pub image_id: Option<String>,
    pub barcode: Option<String>,
}

/// What `PATCH` changes; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct CatalogPatch {
    pub name: Option<String>,
    pub selling_price: Option<Money>,
    pub unit_id: Option<i64>,
    pub image_id: Option<String>,
    /// Removes the image (`is_image_deleted`).
    pub remove_image: bool,
    /// `Some(None)` clears it.
    pub barcode: Option<Option<String>>,
}

impl CatalogPatch {
    /// The names of the fields this patch sets (for the audit log).
    pub fn named_fields(&self) -> Vec<&'static str> {
        super::audit::fields_set(&[
            ("name", self.name.is_some()),
            ("selling_price", self.selling_price.is_some()),
            ("unit_id", self.unit_id.is_some()),
            ("image", self.image_id.is_some() || self.remove_image),
            ("barcode", self.barcode.is_some()),
        ])
    }
}

/// A page of the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogFilter {
    pub page: i64,
    pub per_page: i64,
    /// In the name.
    pub search: Option<String>,
    pub barcode: Option<String>,
    /// The name's first character.
    pub first_char: Option<String>,
}

impl CatalogRepo {
    /// Stores a batch of items in one transaction: all of them, or none.
    pub async fn create_items(
        &self,
        org_id: i64,
        items: Vec<NewCatalogItem>,
    ) -> Result<Vec<CatalogItem>, StoreError> {
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO catalog_items (org_id, name, name_search, selling_price, unit_id, \
             image_id, barcode, created_at, updated_at) VALUES ($1, $2, $8, $3, $4, $5, $6, $7, $7) \
             RETURNING {ITEM_COLUMNS}"
        );
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let mut made = Vec::with_capacity(items.len());
                for item in &items {
                    let row = tx.query_one(
                        &sql,
                        &[
                            org_id.into(),
                            (&item.name).into(),
                            item.selling_price.into(),
                            item.unit_id.into(),
                            item.image_id.as_ref().into(),
                            item.barcode.as_ref().into(),
                            now.into(),
                            item.name.to_lowercase().into(),
                        ],
                    )?;
                    let item = item_from_row(&row)?;
                    let change = Change::new(
                        org_id,
                        "catalog_item.created",
                        format!("catalog_item:{}", item.id),
                    )
                    .with(serde_json::json!({
                        "name": item.name,
                        "selling_price": item.selling_price.to_decimal_string(),
                    }));
                    note(tx, actor.as_ref(), now, &change)?;
                    made.push(item);
                }
                Ok(made)
            })
            .await
    }

    /// One page of `org_id`'s items (deleted ones aside) matching `filter`, oldest first, and
    /// how many match.
    pub async fn list(
        &self,
        org_id: i64,
        filter: CatalogFilter,
    ) -> Result<(Vec<CatalogItem>, i64), StoreError> {
        let mut params: Vec<Value> = vec![org_id.into()];
        let mut parts = vec!["org_id = $1".to_owned(), "deleted_at IS NULL".to_owned()];
        let param = |params: &mut Vec<Value>, value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(search) = &filter.search {
            let pattern = param(
                &mut params,
                format!(
                    "%{}%",
                    super::invoice_list::escape_like(&search.to_lowercase())
                )
                .into(),
            );
            parts.push(format!("name_search LIKE {pattern} ESCAPE '\\'"));
        }
        if let Some(barcode) = &filter.barcode {
            parts.push(format!("barcode = {}", param(&mut params, barcode.into())));
        }
        if let Some(first) = &filter.first_char {
            let pattern = param(
                &mut params,
                format!(
                    "{}%",
                    super::invoice_list::escape_like(&first.to_lowercase())
                )
                .into(),
            );
            parts.push(format!("name_search LIKE {pattern} ESCAPE '\\'"));
        }
        let condition = parts.join(" AND ");
        let per_page = filter.per_page.clamp(1, 200);
        let offset = (filter.page.max(1) - 1).saturating_mul(per_page);
        let count_sql = format!("SELECT COUNT(*) AS n FROM catalog_items WHERE {condition}");
        let page_sql = format!(
            "SELECT {ITEM_COLUMNS} FROM catalog_items WHERE {condition} ORDER BY id \
             LIMIT ${} OFFSET ${}",
            params.len() + 1,
            params.len() + 2
        );
        self.db
            .read(move |tx| {
                Ok(super::counted_page(
                    tx,
                    &count_sql,
                    &page_sql,
                    params.clone(),
                    per_page,
                    offset,
                    item_from_row,
                )?)
            })
            .await
    }

    /// The items `ids` of `org_id` not deleted (the others are simply absent).
    pub async fn items(&self, org_id: i64, ids: Vec<i64>) -> Result<Vec<CatalogItem>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM catalog_items WHERE org_id = $1 AND deleted_at IS NULL \
             AND id IN ({})",
            super::placeholders(2, ids.len())
        );
        self.db
            .read(move |tx| {
                let mut params: Vec<Value> = vec![org_id.into()];
                params.extend(ids.iter().map(|&id| Value::from(id)));
                Ok(super::all_rows(tx, &sql, &params, item_from_row)?)
            })
            .await
    }

    /// Changes what `patch` names of item `id` of `org_id`; `None` when there is no such item.
    pub async fn update(
        &self,
        org_id: i64,
        id: i64,
        patch: CatalogPatch,
    ) -> Result<Option<CatalogItem>, StoreError> {
        let now = self.now_ms();
        let read = format!(
            "SELECT {ITEM_COLUMNS} FROM catalog_items WHERE org_id = $1 AND id = $2 \
             AND deleted_at IS NULL"
        );
        let write = format!(
            "UPDATE catalog_items SET name = $2, selling_price = $3, unit_id = $4, image_id = $5, \
             barcode = $6, updated_at = $7, name_search = $8 WHERE id = $1 RETURNING {ITEM_COLUMNS}"
        );
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let Some(row) = tx.query_opt(&read, &[org_id.into(), id.into()])? else {
                    return Ok(None);
                };
                let mut item = item_from_row(&row)?;
                if let Some(name) = &patch.name {
                    item.name = name.clone();
                }
                if let Some(price) = patch.selling_price {
                    item.selling_price = price;
                }
                if let Some(unit) = patch.unit_id {
                    item.unit_id = unit;
                }
                if patch.remove_image {
                    item.image_id = None;
                }
                if let Some(image) = &patch.image_id {
                    item.image_id = Some(image.clone());
                }
                if let Some(barcode) = &patch.barcode {
                    item.barcode = barcode.clone();
                }
                let row = tx.query_one(
                    &write,
                    &[
                        id.into(),
                        (&item.name).into(),
                        item.selling_price.into(),
                        item.unit_id.into(),
                        item.image_id.as_ref().into(),
                        item.barcode.as_ref().into(),
                        now.into(),
                        item.name.to_lowercase().into(),
                    ],
                )?;
                let item = item_from_row(&row)?;
                let change =
                    Change::new(org_id, "catalog_item.updated", format!("catalog_item:{id}")).with(
                        serde_json::json!({
                            "fields": patch.named_fields(),
                            "name": item.name,
                            "selling_price": item.selling_price.to_decimal_string(),
                        }),
                    );
                note(tx, actor.as_ref(), now, &change)?;
                Ok(Some(item))
            })
            .await
    }

    /// Deletes item `id` of `org_id` from the catalog (the lines of invoices that sold it stay
    /// as they were); `false` when there is no such item.
    pub async fn delete(&self, org_id: i64, id: i64) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let deleted = tx.execute(
                    "UPDATE catalog_items SET deleted_at = $3, updated_at = $3 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    &[org_id.into(), id.into(), now.into()],
                )? == 1;
                if deleted {
                    let change =
                        Change::new(org_id, "catalog_item.deleted", format!("catalog_item:{id}"));
                    note(tx, actor.as_ref(), now, &change)?;
                }
                Ok(deleted)
            })
            .await
    }

    /// Keeps `image` for `org_id`; its id. The same upload again answers the id it already has.
    pub async fn save_image(&self, org_id: i64, image: StoredImage) -> Result<String, StoreError> {
        let now = self.now_ms();
        let fresh = uuid::Uuid::new_v4().to_string();
        let find = "SELECT id FROM catalog_images WHERE org_id = $1 AND sha256 = $2";
        let sha = image.sha256.clone();
        let actor = crate::audit::current();
        let saved = self
            .db
            .write(move |tx| {
                if let Some(row) = tx.query_opt(find, &[org_id.into(), (&sha).into()])? {
                    return Ok(row.text("id")?);
                }
                tx.execute(
                    "INSERT INTO catalog_images (id, org_id, sha256, png, width, height, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        (&fresh).into(),
                        org_id.into(),
                        (&sha).into(),
                        image.png.clone().into(),
                        i64::from(image.width).into(),
                        i64::from(image.height).into(),
                        now.into(),
                    ],
                )?;
                let change = Change::new(org_id, "catalog_image.uploaded", format!("catalog_image:{fresh}"))
                    .with(serde_json::json!({ "width": image.width, "height": image.height }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(fresh.clone())
            })
            .await;
        match conflict_on_unique(saved, "the same image was stored meanwhile") {
            // Another request stored the same upload at the same moment: its id.
            Err(StoreError::Conflict(_)) => {
                let sha = image.sha256.clone();
                self.db
                    .read(move |tx| {
                        let row = tx.query_opt(find, &[org_id.into(), (&sha).into()])?;
                        row.map(|r| r.text("id"))
                            .transpose()?
                            .ok_or(StoreError::NotFound)
                    })
                    .await
            }
            other => other,
        }
    }

    /// The PNG of image `id` of `org_id`.
    pub async fn image_png(&self, org_id: i64, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_owned();
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(
                        "SELECT png FROM catalog_images WHERE org_id = $1 AND id = $2",
                        &[org_id.into(), (&id).into()],
                    )?
                    .map(|row| row.bytes("png"))
                    .transpose()?)
            })
            .await
    }

    /// Which of `ids` are images of `org_id`.
    pub async fn known_images(
        &self,
        org_id: i64,
        ids: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id FROM catalog_images WHERE org_id = $1 AND id IN ({})",
            super::placeholders(2, ids.len())
        );
        self.db
            .read(move |tx| {
                let mut params: Vec<Value> = vec![org_id.into()];
                params.extend(ids.iter().map(Value::from));
                Ok(tx
                    .query(&sql, &params)?
                    .iter()
                    .map(|r| r.text("id"))
                    .collect::<Result<_, _>>()?)
            })
            .await
    }
}

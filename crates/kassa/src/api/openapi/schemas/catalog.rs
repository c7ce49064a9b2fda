//! The catalog: units, items, their images, requests and answers.

use utoipa::{IntoParams, ToSchema};

use super::*;

/// A unit of measure.
#[derive(ToSchema)]
pub struct Unit {
    pub id: i64,
    pub name: String,
    pub name_kaz: String,
}

/// The units a catalog item may have.
#[derive(ToSchema)]
pub struct UnitList {
    pub data: Vec<Unit>,
}

/// A catalog item (Kassa's own catalog: usable at once, `status` always `active`).
#[derive(ToSchema)]
pub struct CatalogItem {
    pub id: i64,
    pub name: String,
    /// Tenge, as a number.
    pub selling_price: f64,
    pub unit_id: i64,
    #[schema(required = true)]
    pub unit: Option<Unit>,
    #[schema(required = true)]
    pub image_id: Option<String>,
    /// Where the image is served (`GET /catalog/images/{file}`).
    #[schema(required = true)]
    pub image_url: Option<String>,
    #[schema(required = true)]
    pub barcode: Option<String>,
    #[schema(example = "active")]
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A page of the catalog, by name.
#[derive(ToSchema)]
pub struct CatalogPage {
    pub data: Vec<CatalogItem>,
    pub meta: PageMeta,
}

/// The filters of `GET /catalog`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogListQuery {
    pub page: Option<i64>,
    /// 1–200, 50 by default.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<i64>,
    /// In the name.
    #[param(max_length = 255)]
    pub search: Option<String>,
    #[param(max_length = 50)]
    pub barcode: Option<String>,
    /// Names starting with this character (of a longer text, its first).
    #[param(max_length = 255)]
    pub first_char: Option<String>,
}

/// Items to add to the catalog, 1–50.
#[derive(ToSchema)]
pub struct CreateCatalogItemsRequest {
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<NewCatalogItem>,
}

#[derive(ToSchema)]
pub struct NewCatalogItem {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub selling_price: f64,
    /// One of `GET /catalog/units`.
    #[schema(minimum = 1)]
    pub unit_id: i64,
    /// An image uploaded with `POST /catalog/upload-image`.
    #[schema(format = "uuid")]
    pub image_id: Option<String>,
    #[schema(max_length = 50)]
    pub barcode: Option<String>,
}

/// The items made.
#[derive(ToSchema)]
pub struct CatalogItemsCreated {
    #[schema(example = "Catalog items created")]
    pub message: String,
    pub data: Vec<CatalogItem>,
}

/// A change of a catalog item: the fields given change.
#[derive(ToSchema)]
pub struct UpdateCatalogItemRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(minimum = 0.01, maximum = 99_999_999.99)]
    pub selling_price: Option<f64>,
    #[schema(minimum = 1)]
    pub unit_id: Option<i64>,
    #[schema(format = "uuid")]
    pub image_id: Option<String>,
    /// `null` or empty removes it.
    #[schema(max_length = 50)]
    pub barcode: Option<String>,
    /// Removes the item's image.
    pub is_image_deleted: Option<bool>,
}

/// The changed item, at the top level and under `data`.
#[derive(ToSchema)]
pub struct CatalogItemUpdated {
    #[serde(flatten)]
    pub item: CatalogItem,
    pub data: CatalogItem,
    pub catalog_item_id: i64,
    #[schema(example = "Catalog item updated")]
    pub message: String,
}

#[derive(ToSchema)]
pub struct CatalogItemDeleted {
    #[schema(example = "Catalog item deleted")]
    pub message: String,
    pub catalog_item_id: i64,
}

/// An image for catalog items: JPEG, PNG, GIF or WebP, at most 10 MB; stored as PNG.
#[derive(ToSchema)]
pub struct ImageUpload {
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
}

#[derive(ToSchema)]
pub struct ImageUploaded {
    #[schema(format = "uuid")]
    pub image_id: String,
    #[schema(example = "/api/v1/catalog/images/0b8f3c1e-5d2a-4c1b-9a57-3f1e2d4c5b6a.png")]
    pub image_url: String,
}

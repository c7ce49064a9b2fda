//! The catalog: units, items (list, batch create, change, delete) and their images (upload,
//! served back as PNG). Kaspi's own catalog protocol is not public: the catalog is Kassa's,
//! and items are usable at once (`status: "active"`; nothing waits for a sync).

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::fields;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiJson, ApiPay, IdPath, QueryPairs};
use crate::api::openapi::{schemas as doc, TAG_CATALOG};
use crate::api::{parse_amount, rfc3339_ms};
use crate::domain::{unit, UNITS};
use crate::gateway::Gateway;
use crate::images::{normalize, ImageError, MAX_UPLOAD_BYTES};
use crate::store::{CatalogFilter, CatalogItem, CatalogPatch, NewCatalogItem};

/// The most items one `POST /catalog` makes.
const MAX_BATCH: usize = 50;

fn not_found() -> ApiError {
    ApiError::not_found(F, "CATALOG_ITEM_NOT_FOUND", "Catalog item not found.")
}

/// Where an image is served back.
pub fn image_url(image_id: &str) -> String {
    format!("/api/v1/catalog/images/{image_id}.png")
}

/// A catalog item as ApiPay shows it (`selling_price` is a number in ApiPay's catalog).
pub fn catalog_item_json(item: &CatalogItem) -> Value {
    json!({
        "id": item.id,
        "name": item.name,
        "selling_price": item.selling_price.to_json_number(),
        "unit_id": item.unit_id,
        "unit": unit(item.unit_id).map(|u| json!({"id": u.id, "name": u.name, "name_kaz": u.name_kaz})),
        "image_id": item.image_id,
        "image_url": item.image_id.as_deref().map(image_url),
        "barcode": item.barcode,
        "status": "active",
        "created_at": rfc3339_ms(item.created_at),
        "updated_at": rfc3339_ms(item.updated_at),
    })
}

#[utoipa::path(
    get,
    path = "/catalog/units",
    tag = TAG_CATALOG,
    summary = "The units of measure",
    responses((status = 200, description = "Every unit a catalog item may have (1 is the piece)", body = doc::UnitList)),
)]
pub(super) async fn list_units() -> Json<Value> {
    Json(json!({
        "data": UNITS
            .iter()
            .map(|u| json!({"id": u.id, "name": u.name, "name_kaz": u.name_kaz}))
            .collect::<Vec<_>>()
    }))
}

#[utoipa::path(
    get,
    path = "/catalog",
    tag = TAG_CATALOG,
    summary = "List catalog items",
    params(doc::CatalogListQuery),
    responses((status = 200, description = "A page of the catalog, by name", body = doc::CatalogPage)),
)]
pub(super) async fn list_catalog(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs<ApiPay>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let page = super::query::page(&query, &mut errors)?;
    let per_page = errors
        .take(query.int("per_page", 1, 200))?
        .flatten()
        .unwrap_or(50);
    let text =
        |errors: &mut FieldErrors, name: &str, max: usize| -> Result<Option<String>, ApiError> {
            Ok(errors
                .take(query.string(name, max))?
                .flatten()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned))
        };
    let search = text(&mut errors, "search", 255)?;
    let barcode = text(&mut errors, "barcode", 50)?;
    // The name's first character: of a longer text, its first character.
    let first_char =
        text(&mut errors, "first_char", 255)?.and_then(|t| t.chars().next().map(String::from));
    errors.into_result(F)?;
    let (items, total) = gateway
        .store()
        .catalog()
        .list(
            caller.org_id,
            CatalogFilter {
                page,
                per_page,
                search,
                barcode,
                first_char,
            },
        )
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(super::views::page_json(
        items.iter().map(catalog_item_json).collect::<Vec<_>>(),
        page,
        per_page,
        total,
    )))
}

/// The item fields both create and update read. `prefix` names them (`items.0.`) in errors;
/// `required` for a create.
struct ItemFields {
    name: Option<String>,
    selling_price: Option<crate::domain::Money>,
    unit_id: Option<i64>,
    image_id: Option<String>,
    barcode: Option<Option<String>>,
}

fn item_fields(
    body: &Map<String, Value>,
    prefix: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> ItemFields {
    let field = |name: &str| format!("{prefix}{name}");
    let name = match body.get("name") {
        None | Some(Value::Null) => {
            if required {
                errors.add(field("name"), "The name field is required.");
            }
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.add(field("name"), "The name field is required.");
            None
        }
        Some(Value::String(s)) if s.chars().count() > 255 => {
            errors.add(
                field("name"),
                "The name must not be greater than 255 characters.",
            );
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.add(field("name"), "The name must be a string.");
            None
        }
    };
    let selling_price = match body.get("selling_price") {
        None | Some(Value::Null) => {
            if required {
                errors.add(
                    field("selling_price"),
                    "The selling price field is required.",
                );
            }
            None
        }
        Some(v) => {
            let mut local = FieldErrors::new();
            let price = parse_amount(v, "selling_price", &mut local);
            if price.is_none() {
                errors.add(
                    field("selling_price"),
                    "The selling price must be a number between 0.01 and 99999999.99 with at most two decimal places.",
                );
            }
            price
        }
    };
    let unit_id = match body.get("unit_id") {
        None | Some(Value::Null) => {
            if required {
                errors.add(field("unit_id"), "The unit id field is required.");
            }
            None
        }
        Some(v) => {
            let mut local = FieldErrors::new();
            let id = fields::integer(Some(v), "unit_id", 1, i64::MAX, &mut local);
            match id.filter(|id| unit(*id).is_some()) {
                Some(id) => Some(id),
                None => {
                    errors.add(
                        field("unit_id"),
                        "The selected unit id is invalid (see GET /catalog/units).",
                    );
                    None
                }
            }
        }
    };
    let image_id = match body.get("image_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Some(s.to_lowercase()),
        Some(_) => {
            errors.add(field("image_id"), "The image id must be a valid UUID.");
            None
        }
    };
    let barcode = match body.get("barcode") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.chars().count() > 50 => {
            errors.add(
                field("barcode"),
                "The barcode must not be greater than 50 characters.",
            );
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.trim().to_owned())),
        Some(_) => {
            errors.add(field("barcode"), "The barcode must be a string.");
            None
        }
    };
    ItemFields {
        name,
        selling_price,
        unit_id,
        image_id,
        barcode,
    }
}

/// Adds an error for each of `wanted` (with its field) that is not an image of `org_id`.
async fn check_images(
    gateway: &Gateway,
    org_id: i64,
    wanted: Vec<(String, String)>,
    errors: &mut FieldErrors,
) -> Result<(), ApiError> {
    let known = gateway
        .store()
        .catalog()
        .known_images(org_id, wanted.iter().map(|(_, id)| id.clone()).collect())
        .await
        .map_err(|e| ApiError::store(F, e))?;
    for (field, id) in wanted {
        if !known.contains(&id) {
            errors.add(
                field,
                "The image id is not an image uploaded by this organization.",
            );
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/catalog",
    tag = TAG_CATALOG,
    summary = "Add catalog items",
    description = "Made at once, `status: active` (Kassa's catalog is its own; nothing waits for \
        a sync with Kaspi). Every item is checked first: one invalid item makes none.",
    request_body = doc::CreateCatalogItemsRequest,
    responses((status = 201, description = "The items made", body = doc::CatalogItemsCreated)),
)]
pub(super) async fn create_catalog_items(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let list: &[Value] = match body.get("items") {
        None | Some(Value::Null) => {
            errors.add("items", "The items field is required.");
            &[]
        }
        Some(items) => fields::list(items, "items", MAX_BATCH, &mut errors).unwrap_or(&[]),
    };
    let mut new_items = Vec::with_capacity(list.len());
    let mut images = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let prefix = format!("items.{i}.");
        let Some(object) = raw.as_object() else {
            errors.add(format!("items.{i}"), "Each item must be an object.");
            continue;
        };
        let f = item_fields(object, &prefix, true, &mut errors);
        if let Some(image) = &f.image_id {
            images.push((format!("{prefix}image_id"), image.clone()));
        }
        if let (Some(name), Some(selling_price), Some(unit_id)) =
            (f.name, f.selling_price, f.unit_id)
        {
            new_items.push(NewCatalogItem {
                name,
                selling_price,
                unit_id,
                image_id: f.image_id,
                barcode: f.barcode.flatten(),
            });
        }
    }
    check_images(&gateway, caller.org_id, images, &mut errors).await?;
    errors.into_result(F)?;
    let made = gateway
        .store()
        .catalog()
        .create_items(caller.org_id, new_items)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    tracing::info!(items = made.len(), "catalog items created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Catalog items created",
            "data": made.iter().map(catalog_item_json).collect::<Vec<_>>(),
        })),
    ))
}

#[utoipa::path(
    patch,
    path = "/catalog/{id}",
    tag = TAG_CATALOG,
    summary = "Change a catalog item",
    description = "The fields given change. Invoices already made keep the name and price they \
        were sold at.",
    params(("id" = i64, Path, description = "The catalog item's id")),
    request_body = doc::UpdateCatalogItemRequest,
    responses((status = 200, description = "The changed item", body = doc::CatalogItemUpdated)),
)]
pub(super) async fn update_catalog_item(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let f = item_fields(&body, "", false, &mut errors);
    let remove_image = fields::boolean(
        body.get("is_image_deleted"),
        "is_image_deleted",
        &mut errors,
    )
    .unwrap_or(false);
    if let Some(image) = &f.image_id {
        check_images(
            &gateway,
            caller.org_id,
            vec![("image_id".into(), image.clone())],
            &mut errors,
        )
        .await?;
    }
    errors.into_result(F)?;
    let item = gateway
        .store()
        .catalog()
        .update(
            caller.org_id,
            id,
            CatalogPatch {
                name: f.name,
                selling_price: f.selling_price,
                unit_id: f.unit_id,
                image_id: f.image_id,
                remove_image,
                barcode: f.barcode,
            },
        )
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(not_found)?;
    let mut answer = catalog_item_json(&item);
    answer["data"] = catalog_item_json(&item);
    answer["catalog_item_id"] = json!(item.id);
    answer["message"] = json!("Catalog item updated");
    Ok(Json(answer))
}

#[utoipa::path(
    delete,
    path = "/catalog/{id}",
    tag = TAG_CATALOG,
    summary = "Delete a catalog item",
    params(("id" = i64, Path, description = "The catalog item's id")),
    responses((status = 200, description = "Deleted", body = doc::CatalogItemDeleted)),
)]
pub(super) async fn delete_catalog_item(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let deleted = gateway
        .store()
        .catalog()
        .delete(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    if !deleted {
        return Err(not_found());
    }
    Ok(Json(
        json!({"message": "Catalog item deleted", "catalog_item_id": id}),
    ))
}

#[utoipa::path(
    post,
    path = "/catalog/upload-image",
    tag = TAG_CATALOG,
    summary = "Upload an image for catalog items",
    description = "A JPEG, PNG, GIF or WebP of at most 10 MB in the multipart field `image`; it \
        is checked by decoding it, resized, and kept as PNG. Anything else is 422 naming `image`.",
    request_body(content = doc::ImageUpload, content_type = "multipart/form-data"),
    responses((status = 200, description = "The image's id, for `image_id`", body = doc::ImageUploaded)),
)]
pub(super) async fn upload_image(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |message: &str| ApiError::validation(F, "image", message.to_owned());
    let mut multipart =
        multipart.map_err(|_| invalid("The image must be sent as multipart/form-data."))?;
    let mut upload: Option<Vec<u8>> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large());
            }
            Err(_) => return Err(invalid("The multipart body could not be read.")),
        };
        if field.name() != Some("image") {
            continue;
        }
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(_) => return Err(invalid("The image could not be read.")),
            }
        }
        upload = Some(bytes);
        break;
    }
    let Some(upload) = upload else {
        return Err(invalid("The image field is required."));
    };
    let stored = tokio::task::spawn_blocking(move || normalize(&upload))
        .await
        .map_err(|e| ApiError::internal(F, e))?
        .map_err(|e| match e {
            ImageError::NotAnImage => {
                invalid("The image must be a file of type: jpg, jpeg, png, gif, webp.")
            }
            ImageError::Corrupt(_) => {
                invalid("The image could not be decoded: it is damaged or not an image.")
            }
            ImageError::TooManyPixels => invalid("The image has too many pixels."),
        })?;
    let id = gateway
        .store()
        .catalog()
        .save_image(caller.org_id, stored)
        .await
        .map_err(|e| ApiError::store(F, e))?;
    Ok(Json(json!({"image_id": id, "image_url": image_url(&id)})))
}

fn too_large() -> ApiError {
    ApiError::validation(
        F,
        "image",
        format!(
            "The image must not be greater than {} kilobytes.",
            MAX_UPLOAD_BYTES / 1024
        ),
    )
}

#[utoipa::path(
    get,
    path = "/catalog/images/{file}",
    tag = TAG_CATALOG,
    summary = "An uploaded image, as PNG",
    params(("file" = String, Path, description = "`<image_id>.png`, as `image_url` names it")),
    responses((status = 200, description = "The image", content_type = "image/png", body = doc::Binary)),
)]
pub(super) async fn catalog_image(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(F, "IMAGE_NOT_FOUND", "Image not found.");
    let id = file.strip_suffix(".png").ok_or_else(missing)?;
    let png = gateway
        .store()
        .catalog()
        .image_png(caller.org_id, id)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .ok_or_else(missing)?;
    Response::builder()
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::CACHE_CONTROL, "private, max-age=86400, immutable")
        .body(Body::from(png))
        .map_err(|e| ApiError::internal(F, e))
}

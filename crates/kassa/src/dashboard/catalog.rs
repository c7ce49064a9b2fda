//! The catalog: its items with their pictures, a form to add one, an item's page to change,
//! delete it and upload its picture. Changes go through the ApiPay surface's own handlers
//! ([`Dashboard::api`]). The API has no route for one item, so its page reads the store; an
//! upload is decoded and kept as the API's `upload-image` does it ([`crate::images::normalize`],
//! the catalog store), then set on the item through the API's `PATCH`.

use std::collections::HashMap;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{json, Map, Value};

use super::render::{DashError, Signed};
use super::{see_other, ApiAnswer, Dashboard};
use crate::api::rfc3339_ms;
use crate::images::{normalize, ImageError, MAX_UPLOAD_BYTES};
use crate::store::CatalogItem;

#[rustfmt::skip]
pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("catalog.title", "Каталог", "Catalog"),
    ("catalog.add", "Добавить товар", "Add an item"),
    ("catalog.add_button", "Добавить", "Add"),
    ("catalog.item", "Товар", "Item"),
    ("catalog.name", "Название", "Name"),
    ("catalog.price", "Цена", "Price"),
    ("catalog.price_hint", "В тенге, например 1500 или 1500.50.", "In tenge, e.g. 1500 or 1500.50."),
    ("catalog.unit", "Единица", "Unit"),
    ("catalog.barcode", "Штрихкод (необязательно)", "Barcode (optional)"),
    ("catalog.barcode_short", "Штрихкод", "Barcode"),
    ("catalog.image", "Фото", "Picture"),
    ("catalog.no_image", "нет фото", "no picture"),
    ("catalog.edit", "Изменить", "Edit"),
    ("catalog.updated_at", "Изменён", "Updated"),
    ("catalog.delete", "Удалить товар", "Delete the item"),
    ("catalog.delete_confirm", "Удалить этот товар? Счета, в которых он продан, сохранят свои строки.", "Delete this item? Invoices that sold it keep their lines."),
    ("catalog.upload", "Загрузить фото", "Upload the picture"),
    ("catalog.file", "Файл", "File"),
    ("catalog.image_hint", "JPEG, PNG, GIF или WebP; хранится уменьшенным до 512×512. Не больше, МБ:", "JPEG, PNG, GIF or WebP; kept shrunk to fit 512×512. At most, MB:"),
    ("catalog.remove_image", "Убрать фото", "Remove the picture"),
    ("catalog.image_required", "Выберите файл с фото.", "Choose a picture file."),
    ("catalog.image_too_large", "Файл слишком большой.", "The file is too large."),
    ("catalog.image_not_image", "Это не JPEG, PNG, GIF или WebP.", "This is not a JPEG, PNG, GIF or WebP picture."),
    ("catalog.image_corrupt", "Фото не читается: файл повреждён или это не изображение.", "The picture cannot be read: the file is damaged or not an image."),
    ("catalog.image_too_many_pixels", "В фото слишком много пикселей.", "The picture has too many pixels."),
    ("catalog.image_unreadable", "Файл не удалось получить. Попробуйте ещё раз.", "The file could not be received. Please try again."),
    ("catalog.viewer_why", "Ваша роль не позволяет менять каталог.", "Your role does not allow changing the catalog."),
    ("done.catalog_created", "Товар добавлен.", "The item was added."),
    ("done.catalog_saved", "Товар сохранён.", "The item was saved."),
    ("done.catalog_deleted", "Товар удалён.", "The item was deleted."),
    ("done.catalog_image", "Фото загружено.", "The picture was uploaded."),
    ("done.catalog_image_removed", "Фото убрано.", "The picture was removed."),
];

/// The item fields the forms send, as the API names them.
const ITEM_FIELDS: &[&str] = &["name", "selling_price", "unit_id", "barcode"];

/// Items per page of the list.
const PER_PAGE: u32 = 100;

pub(super) fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/catalog", get(list).post(create))
        .route("/catalog/images/{file}", get(image))
        .route("/catalog/{id}", get(show).post(update))
        .route("/catalog/{id}/delete", post(delete))
        .route(
            "/catalog/{id}/image",
            // A picture of up to 10 MB, in multipart, as the API's upload takes it.
            post(upload_image).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 256 * 1024)),
        )
        .route("/catalog/{id}/image/delete", post(remove_image))
}

/// The units an item may have (`GET /catalog/units`).
async fn units(dash: &Dashboard, org_id: i64) -> Result<Value, DashError> {
    Ok(dash.api_get(org_id, "/catalog/units").await?["data"].take())
}

/// The list with the add form, empty or with what was sent and the API's refusal.
async fn list_page(
    dash: &Dashboard,
    me: &Signed,
    page: u32,
    form: Value,
    failed: Option<&ApiAnswer>,
) -> Result<Response, DashError> {
    let org = me.org_id();
    let body = dash
        .api_get(org, &format!("/catalog?page={page}&per_page={PER_PAGE}"))
        .await?;
    let errors = failed.map_or_else(|| json!({}), |a| unprefixed(&a.field_errors()));
    let mut response = dash
        .page(
            me,
            "catalog.html",
            "catalog",
            json!({
                "items": body["data"],
                "meta": body["meta"],
                "page_base": "/dashboard/catalog?",
                "units": units(dash, org).await?,
                "form": form,
                "errors": errors,
                "alert": failed.map(ApiAnswer::message),
            }),
        )
        .await?;
    if let Some(failed) = failed {
        *response.status_mut() = failed.status;
    }
    Ok(response)
}

/// Field errors of a batch create (`items.0.name`) under the form's names (`name`).
fn unprefixed(errors: &Value) -> Value {
    let mut out = Map::new();
    if let Some(errors) = errors.as_object() {
        for (field, message) in errors {
            let name = field.strip_prefix("items.0.").unwrap_or(field);
            out.entry(name.to_owned())
                .or_insert_with(|| message.clone());
        }
    }
    Value::Object(out)
}

/// `GET /dashboard/catalog`.
async fn list(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let page = super::page_of(&query);
    list_page(&dash, &me, page, json!({}), None).await
}

/// `POST /dashboard/catalog`: one item, as the API's batch of one.
async fn create(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let item = super::json_fields(&form, ITEM_FIELDS);
    let answer = dash
        .api(
            me.org_id(),
            Method::POST,
            "/catalog",
            Some(json!({"items": [item]})),
        )
        .await?;
    if answer.ok() {
        return Ok(see_other("/dashboard/catalog?done=catalog_created"));
    }
    list_page(&dash, &me, 1, json!(form), Some(&answer)).await
}

/// Item `id` of the signed-in organization (the API has no route for one item).
async fn find(dash: &Dashboard, org_id: i64, id: i64) -> Result<CatalogItem, DashError> {
    dash.state()
        .store
        .catalog()
        .items(org_id, vec![id])
        .await?
        .into_iter()
        .next()
        .ok_or(DashError::NotFound)
}

/// The item's page: `form` (what was sent, or the item's values) and `errors` beside the
/// fields, `alert` above them, with `status`.
async fn item_page(
    dash: &Dashboard,
    me: &Signed,
    item: &CatalogItem,
    form: Option<Value>,
    errors: Value,
    alert: Option<String>,
    status: StatusCode,
) -> Result<Response, DashError> {
    let form = form.unwrap_or_else(|| {
        json!({
            "name": item.name,
            "selling_price": item.selling_price.to_decimal_string(),
            "unit_id": item.unit_id.to_string(),
            "barcode": item.barcode,
        })
    });
    let mut response = dash
        .page(
            me,
            "catalog_item.html",
            "catalog",
            json!({
                "item": {
                    "id": item.id,
                    "name": item.name,
                    "selling_price": item.selling_price.to_decimal_string(),
                    "unit_id": item.unit_id,
                    "image_id": item.image_id,
                    "barcode": item.barcode,
                    "created_at": rfc3339_ms(item.created_at),
                    "updated_at": rfc3339_ms(item.updated_at),
                },
                "units": units(dash, me.org_id()).await?,
                "form": form,
                "errors": errors,
                "alert": alert,
                "max_mb": MAX_UPLOAD_BYTES / (1024 * 1024),
            }),
        )
        .await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /dashboard/catalog/{id}`.
async fn show(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let item = find(&dash, me.org_id(), super::path_id(&id)?).await?;
    item_page(&dash, &me, &item, None, json!({}), None, StatusCode::OK).await
}

/// `PATCH`es item `id` through the API with `body`; on to its page with `done`, or back to it
/// with the API's refusal (`form` being what was sent).
async fn patch(
    dash: &Dashboard,
    me: &Signed,
    id: i64,
    body: Value,
    form: Option<Value>,
    done: &str,
) -> Result<Response, DashError> {
    let answer = dash
        .api(
            me.org_id(),
            Method::PATCH,
            &format!("/catalog/{id}"),
            Some(body),
        )
        .await?;
    if answer.ok() {
        return Ok(see_other(&format!("/dashboard/catalog/{id}?done={done}")));
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Err(DashError::NotFound);
    }
    let item = find(dash, me.org_id(), id).await?;
    let mut errors = answer.field_errors();
    // The picture's errors are shown beside the upload.
    if let Some(e) = errors.get("image_id").cloned() {
        errors["image"] = e;
    }
    item_page(
        dash,
        me,
        &item,
        form,
        errors,
        Some(answer.message()),
        answer.status,
    )
    .await
}

/// `POST /dashboard/catalog/{id}`: the form's fields as the API's `PATCH` (an empty barcode
/// clears it).
async fn update(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let mut body = Map::new();
    for name in ITEM_FIELDS {
        if let Some(v) = form.get(*name) {
            body.insert((*name).to_owned(), Value::String(v.trim().to_owned()));
        }
    }
    patch(
        &dash,
        &me,
        id,
        Value::Object(body),
        Some(json!(form)),
        "catalog_saved",
    )
    .await
}

/// `POST /dashboard/catalog/{id}/delete`.
async fn delete(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    let answer = dash
        .api(me.org_id(), Method::DELETE, &format!("/catalog/{id}"), None)
        .await?;
    if answer.ok() {
        return Ok(see_other("/dashboard/catalog?done=catalog_deleted"));
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Err(DashError::NotFound);
    }
    let item = find(&dash, me.org_id(), id).await?;
    item_page(
        &dash,
        &me,
        &item,
        None,
        answer.field_errors(),
        Some(answer.message()),
        answer.status,
    )
    .await
}

/// Why an upload was not taken: a label.
enum UploadProblem {
    Missing,
    TooLarge,
    Unreadable,
    Image(ImageError),
}

impl UploadProblem {
    fn label(&self) -> &'static str {
        match self {
            UploadProblem::Missing => "catalog.image_required",
            UploadProblem::TooLarge => "catalog.image_too_large",
            UploadProblem::Unreadable => "catalog.image_unreadable",
            UploadProblem::Image(ImageError::NotAnImage) => "catalog.image_not_image",
            UploadProblem::Image(ImageError::Corrupt(_)) => "catalog.image_corrupt",
            UploadProblem::Image(ImageError::TooManyPixels) => "catalog.image_too_many_pixels",
        }
    }
}

/// The bytes of the form's `image` field, read as the API's upload reads them.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Vec<u8>, UploadProblem> {
    let mut multipart = multipart.map_err(|_| UploadProblem::Missing)?;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Err(UploadProblem::Missing),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(UploadProblem::TooLarge)
            }
            Err(_) => return Err(UploadProblem::Unreadable),
        };
        if field.name() != Some("image") {
            continue;
        }
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                        return Err(UploadProblem::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(UploadProblem::TooLarge)
                }
                Err(_) => return Err(UploadProblem::Unreadable),
            }
        }
        // A file input left empty still sends its field, without bytes.
        if bytes.is_empty() {
            return Err(UploadProblem::Missing);
        }
        return Ok(bytes);
    }
}

/// `POST /dashboard/catalog/{id}/image?csrf_token=…` (multipart, field `image`): the picture
/// decoded and kept as the API's upload does it, then set on the item through the API.
async fn upload_image(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, DashError> {
    let org = me.org_id();
    let item = find(&dash, org, super::path_id(&id)?).await?;
    let refused = |problem: UploadProblem| {
        let message = super::i18n::word(me.lang, problem.label()).unwrap_or_default();
        (json!({ "image": message }), message.to_owned())
    };
    let upload = match read_upload(multipart).await {
        Ok(bytes) => bytes,
        Err(problem) => {
            let (errors, alert) = refused(problem);
            return item_page(
                &dash,
                &me,
                &item,
                None,
                errors,
                Some(alert),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let stored = tokio::task::spawn_blocking(move || normalize(&upload))
        .await
        .map_err(DashError::internal)?;
    let stored = match stored {
        Ok(stored) => stored,
        Err(e) => {
            let (errors, alert) = refused(UploadProblem::Image(e));
            return item_page(
                &dash,
                &me,
                &item,
                None,
                errors,
                Some(alert),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let image_id = dash.state().store.catalog().save_image(org, stored).await?;
    patch(
        &dash,
        &me,
        item.id,
        json!({ "image_id": image_id }),
        None,
        "catalog_image",
    )
    .await
}

/// `POST /dashboard/catalog/{id}/image/delete`: the item without its picture.
async fn remove_image(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id = super::path_id(&id)?;
    patch(
        &dash,
        &me,
        id,
        json!({ "is_image_deleted": true }),
        None,
        "catalog_image_removed",
    )
    .await
}

/// `GET /dashboard/catalog/images/{id}.png`: a picture of the signed-in organization.
async fn image(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Path(file): Path<String>,
) -> Result<Response, DashError> {
    let id = file.strip_suffix(".png").ok_or(DashError::NotFound)?;
    let png = dash
        .state()
        .store
        .catalog()
        .image_png(me.org_id(), id)
        .await?
        .ok_or(DashError::NotFound)?;
    // An image never changes under its id; only this browser keeps it (it is the organization's).
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        png,
    )
        .into_response())
}

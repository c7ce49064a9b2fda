//! The catalog and cart invoices over HTTP on both databases: units; batches of items (0, 1,
//! 50 and 51), their fields named in errors, search (Cyrillic, case-insensitive), barcode,
//! first letter and pages; change and delete (an invoice keeps the lines it sold); image
//! uploads decoded (PNG, JPEG, GIF, WebP; text, a damaged image and 10 MB + 1 byte refused;
//! the same upload stored once; served back as a PNG of at most 512×512); carts in both of
//! ApiPay's shapes with discounts, and what Kaspi is told. Organizations never see each other's.

mod common;

use std::io::Cursor;

use common::{Answer, Kassa};
use kassa::db::testing::TestDb;
use serde_json::{json, Value};

const BOUNDARY: &str = "kassa-test-boundary-7f3a";

/// `POST /catalog/upload-image` with `bytes` as the `image` field named `filename`.
async fn upload(kassa: &Kassa, key: &str, filename: &str, bytes: &[u8]) -> Answer {
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let r = kassa
        .http
        .post(kassa.url("/catalog/upload-image"))
        .header("X-API-Key", key)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("sent");
    Answer::read(r).await
}

fn picture(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let pixels = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 90, 255])
    });
    let mut out = Vec::new();
    let picture = image::DynamicImage::ImageRgba8(pixels);
    let picture = if format == image::ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(picture.to_rgb8())
    } else {
        picture
    };
    picture
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encodes");
    out
}

async fn send(
    kassa: &Kassa,
    method: reqwest::Method,
    key: &str,
    path: &str,
    body: Value,
) -> Answer {
    let r = kassa
        .http
        .request(method, kassa.url(path))
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .await
        .expect("sent");
    Answer::read(r).await
}

on_both_databases!(
    catalog_items_are_made_found_changed_and_deleted,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let units = kassa.get(&key, "/catalog/units").await;
        assert_eq!(units.status, 200);
        assert_eq!(
            units.json["data"][0],
            json!({"id": 1, "name": "штука", "name_kaz": "дана"})
        );

        // Batches: none, too many, and one bad item that stores nothing.
        let none = kassa.post(&key, "/catalog", json!({"items": []})).await;
        assert_eq!(none.status, 422);
        assert!(none.json["errors"]["items"].is_array());
        let many: Vec<Value> = (0..51)
            .map(|i| json!({"name": format!("Item {i}"), "selling_price": 100, "unit_id": 1}))
            .collect();
        let too_many = kassa.post(&key, "/catalog", json!({"items": many})).await;
        assert_eq!(too_many.status, 422);
        assert!(too_many.json["errors"]["items"].is_array());
        let bad = kassa
            .post(
                &key,
                "/catalog",
                json!({"items": [
                    {"name": "Латте", "selling_price": 1500, "unit_id": 1},
                    {"name": "", "selling_price": 0, "unit_id": 999, "barcode": "x".repeat(51), "image_id": "not-a-uuid"}
                ]}),
            )
            .await;
        assert_eq!(bad.status, 422, "{:?}", bad.json);
        for field in [
            "items.1.name",
            "items.1.selling_price",
            "items.1.unit_id",
            "items.1.barcode",
            "items.1.image_id",
        ] {
            assert!(
                bad.json["errors"][field].is_array(),
                "{field}: {:?}",
                bad.json
            );
        }
        assert_eq!(
            kassa.get(&key, "/catalog").await.json["meta"]["total"],
            0,
            "nothing half-stored"
        );

        let fifty: Vec<Value> = (0..50)
            .map(|i| json!({"name": format!("Товар {i:02}"), "selling_price": 100 + i, "unit_id": 1}))
            .collect();
        let made = kassa.post(&key, "/catalog", json!({"items": fifty})).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        assert_eq!(made.json["data"].as_array().map(Vec::len), Some(50));
        let made = kassa
            .post(
                &key,
                "/catalog",
                json!({"items": [
                    {"name": "Латте Большой", "selling_price": 1800.5, "unit_id": 1, "barcode": "4901234567890"},
                    {"name": "Americano", "selling_price": "1200", "unit_id": 4}
                ]}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let latte = made.json["data"][0].clone();
        assert_eq!(latte["selling_price"], 1800.5);
        assert_eq!(latte["status"], "active");
        assert_eq!(made.json["data"][1]["unit"]["name"], "литр");
        let latte_id = latte["id"].as_i64().expect("id");

        // Search is by name, in any case, also in Cyrillic; barcode; first letter; pages.
        let found = kassa
            .get(&key, "/catalog?search=%D0%BB%D0%B0%D1%82%D1%82%D0%B5")
            .await; // латте
        assert_eq!(found.json["meta"]["total"], 1, "{:?}", found.json);
        assert_eq!(found.json["data"][0]["id"], latte_id);
        let by_code = kassa.get(&key, "/catalog?barcode=4901234567890").await;
        assert_eq!(by_code.json["data"][0]["id"], latte_id);
        let by_letter = kassa.get(&key, "/catalog?first_char=a").await;
        assert_eq!(by_letter.json["meta"]["total"], 1);
        let page = kassa.get(&key, "/catalog?per_page=20&page=3").await;
        assert_eq!(page.json["meta"]["total"], 52);
        assert_eq!(page.json["meta"]["last_page"], 3);
        assert_eq!(page.json["data"].as_array().map(Vec::len), Some(12));
        assert_eq!(kassa.get(&key, "/catalog?per_page=201").await.status, 422);

        // Change.
        let patched = send(
            &kassa,
            reqwest::Method::PATCH,
            &key,
            &format!("/catalog/{latte_id}"),
            json!({"selling_price": 2000, "barcode": null}),
        )
        .await;
        assert_eq!(patched.status, 200, "{:?}", patched.json);
        assert_eq!(patched.json["selling_price"], 2000);
        assert_eq!(patched.json["barcode"], Value::Null);
        let refused = send(
            &kassa,
            reqwest::Method::PATCH,
            &key,
            &format!("/catalog/{latte_id}"),
            json!({"unit_id": 0}),
        )
        .await;
        assert_eq!(refused.status, 422);
        assert!(refused.json["errors"]["unit_id"].is_array());

        // Sold, then deleted: the invoice keeps its line as sold.
        let sold = kassa
            .post(&key, "/invoices", json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte_id, "count": 2}]}))
            .await;
        assert_eq!(sold.status, 201, "{:?}", sold.json);
        assert_eq!(sold.json["amount"], "4000.00");
        let invoice_id = sold.json["id"].as_i64().expect("id");
        let deleted = send(
            &kassa,
            reqwest::Method::DELETE,
            &key,
            &format!("/catalog/{latte_id}"),
            json!({}),
        )
        .await;
        assert_eq!(deleted.status, 200, "{:?}", deleted.json);
        let again = send(
            &kassa,
            reqwest::Method::DELETE,
            &key,
            &format!("/catalog/{latte_id}"),
            json!({}),
        )
        .await;
        assert_eq!(again.status, 404);
        let invoice = kassa
            .get(&key, &format!("/invoices/{invoice_id}"))
            .await
            .json;
        assert_eq!(invoice["items"][0]["name"], "Латте Большой");
        assert_eq!(invoice["items"][0]["price"], "2000.00");
        assert_eq!(invoice["items"][0]["catalog_item_id"], latte_id);
        let gone = kassa
            .post(&key, "/invoices", json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte_id, "count": 1}]}))
            .await;
        assert_eq!(gone.status, 422);
        assert!(gone.json["errors"]["cart_items.0.catalog_item_id"].is_array());

        // Another organization sees none of it.
        let other_key = kassa.other_org_key("other").await;
        assert_eq!(
            kassa.get(&other_key, "/catalog").await.json["meta"]["total"],
            0
        );
        let americano = made.json["data"][1]["id"].as_i64().expect("id");
        let theirs = send(
            &kassa,
            reqwest::Method::PATCH,
            &other_key,
            &format!("/catalog/{americano}"),
            json!({"name": "Mine"}),
        )
        .await;
        assert_eq!(theirs.status, 404);
        let theirs = send(
            &kassa,
            reqwest::Method::DELETE,
            &other_key,
            &format!("/catalog/{americano}"),
            json!({}),
        )
        .await;
        assert_eq!(theirs.status, 404);
        let cart = kassa
            .post(&other_key, "/invoices", json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": americano, "count": 1}]}))
            .await;
        assert_eq!(cart.status, 422);
        assert!(cart.json["errors"]["cart_items.0.catalog_item_id"].is_array());
    }
);

on_both_databases!(
    images_are_decoded_shrunk_stored_once_and_served_back,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let mut ids = Vec::new();
        for (name, bytes) in [
            ("wide.png", picture(1600, 400, image::ImageFormat::Png)),
            ("photo.jpg", picture(300, 900, image::ImageFormat::Jpeg)),
            ("anim.gif", picture(64, 64, image::ImageFormat::Gif)),
            ("pic.webp", picture(700, 700, image::ImageFormat::WebP)),
        ] {
            let up = upload(&kassa, &key, name, &bytes).await;
            assert_eq!(up.status, 200, "{name}: {:?}", up.json);
            let id = up.json["image_id"].as_str().expect("id").to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok());
            ids.push(id);
        }
        // Served back as PNG, at most 512×512, its shape kept.
        let fetch = |id: String| {
            let request = kassa
                .http
                .get(kassa.url(&format!("/catalog/images/{id}.png")))
                .header("X-API-Key", &key);
            async move { request.send().await.expect("sent") }
        };
        let expected = [(512, 128), (171, 512), (64, 64), (512, 512)];
        for (id, (w, h)) in ids.iter().zip(expected) {
            let r = fetch(id.clone()).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "image/png");
            let png = r.bytes().await.expect("body");
            let back =
                image::load_from_memory_with_format(&png, image::ImageFormat::Png).expect("a PNG");
            // Rounded to the nearest pixel.
            assert!(
                back.width().abs_diff(w) <= 1 && back.height().abs_diff(h) <= 1,
                "{id}: {}×{}",
                back.width(),
                back.height()
            );
            assert!(back.width() <= 512 && back.height() <= 512);
        }
        // The same upload again: the same image.
        let again = upload(
            &kassa,
            &key,
            "copy.png",
            &picture(1600, 400, image::ImageFormat::Png),
        )
        .await;
        assert_eq!(again.json["image_id"], ids[0].as_str());
        let db = test.db();
        assert_eq!(
            common::count(&db, "SELECT COUNT(*) AS n FROM catalog_images").await,
            4
        );

        // Refused, naming the field: text named .png, a damaged PNG, 10 MB + 1 byte, no file.
        let text = upload(&kassa, &key, "photo.png", b"this is not an image at all").await;
        assert_eq!(text.status, 422, "{:?}", text.json);
        assert!(text.json["errors"]["image"].is_array());
        let mut damaged = picture(200, 200, image::ImageFormat::Png);
        damaged.truncate(damaged.len() / 2);
        let damaged = upload(&kassa, &key, "half.png", &damaged).await;
        assert_eq!(damaged.status, 422, "{:?}", damaged.json);
        let big = vec![0_u8; 10 * 1024 * 1024 + 1];
        let big = upload(&kassa, &key, "big.png", &big).await;
        assert_eq!(big.status, 422, "{:?}", big.json);
        assert!(big.json["errors"]["image"][0]
            .as_str()
            .is_some_and(|m| m.contains("10240")));
        let exactly = {
            // 10 MB exactly is allowed through to the decoder (and refused there: not a picture).
            let bytes = vec![0_u8; 10 * 1024 * 1024];
            upload(&kassa, &key, "zeros.png", &bytes).await
        };
        assert_eq!(exactly.status, 422);
        assert!(exactly.json["errors"]["image"][0]
            .as_str()
            .is_some_and(|m| !m.contains("10240")));
        let json_body = kassa
            .post(&key, "/catalog/upload-image", json!({"image": "x"}))
            .await;
        assert_eq!(json_body.status, 422);
        assert_eq!(
            common::count(&db, "SELECT COUNT(*) AS n FROM catalog_images").await,
            4
        );

        // An item with an image; another organization can use neither.
        let made = kassa
            .post(&key, "/catalog", json!({"items": [{"name": "Pic", "selling_price": 1, "unit_id": 1, "image_id": ids[1]}]}))
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        assert_eq!(
            made.json["data"][0]["image_url"],
            format!("/api/v1/catalog/images/{}.png", ids[1])
        );
        let item = made.json["data"][0]["id"].as_i64().expect("id");
        let removed = send(
            &kassa,
            reqwest::Method::PATCH,
            &key,
            &format!("/catalog/{item}"),
            json!({"is_image_deleted": true}),
        )
        .await;
        assert_eq!(removed.json["image_id"], Value::Null);
        let other_key = kassa.other_org_key("other").await;
        let r = kassa
            .http
            .get(kassa.url(&format!("/catalog/images/{}.png", ids[0])))
            .header("X-API-Key", &other_key)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 404);
        let theirs = kassa
            .post(&other_key, "/catalog", json!({"items": [{"name": "Pic", "selling_price": 1, "unit_id": 1, "image_id": ids[0]}]}))
            .await;
        assert_eq!(theirs.status, 422);
        assert!(theirs.json["errors"]["items.0.image_id"].is_array());
    }
);

on_both_databases!(
    cart_invoices_sum_exactly_in_both_shapes_with_discounts,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        // The seed's own example.
        let seed = kassa
            .post(
                &key,
                "/invoices",
                json!({
                    "phone_number": "87001234567",
                    "description": "Cart order",
                    "cart_items": [
                        {"Name": "Coffee Latte", "Price": 1500, "Count": 2, "NomenclatureId": 12345, "Type": "CATALOGUE", "UnitId": 1, "NomenclatureHistoryId": 67890},
                        {"Name": "Cookie", "Price": 500, "Count": 3, "NomenclatureId": -2, "Type": "FAST_SALE", "UnitId": 1}
                    ]
                }),
            )
            .await;
        assert_eq!(seed.status, 201, "{:?}", seed.json);
        assert_eq!(seed.json["amount"], "4500.00");
        assert_eq!(seed.json["items"][0]["NomenclatureId"], 12345);
        assert_eq!(seed.json["items"][1]["Type"], "FAST_SALE");
        assert!(
            seed.json.get("discount_sum").is_none(),
            "no discount, no discount fields"
        );
        // Kaspi gets the total and a comment listing the lines.
        let op: u64 = seed.json["kaspi_invoice_id"]
            .as_str()
            .expect("op")
            .parse()
            .expect("n");
        let at_kaspi = kassa.sim().operation(op).expect("at Kaspi");
        assert!(
            at_kaspi
                .comment
                .starts_with("Cart order — Coffee Latte ×2, Cookie ×3 [kassa:"),
            "{}",
            at_kaspi.comment
        );
        assert_eq!(
            kassa::domain::Money::from(at_kaspi.amount),
            kassa::domain::Money::from_tiyn(450_000)
        );

        let made = kassa
            .post(
                &key,
                "/catalog",
                json!({"items": [
                    {"name": "Latte", "selling_price": 1500, "unit_id": 1},
                    {"name": "Croissant", "selling_price": 333.33, "unit_id": 1}
                ]}),
            )
            .await;
        let latte = made.json["data"][0]["id"].as_i64().expect("id");
        let croissant = made.json["data"][1]["id"].as_i64().expect("id");
        // The current shape, a price override and 15 %: 2 × 4500 + 3 × 333.33 = 9999.99;
        // 15 % = 1499.9985 → 1500.00; amount 8499.99.
        let current = kassa
            .post(
                &key,
                "/invoices",
                json!({"phone_number": "87001234567", "discount_percentage": 15, "cart_items": [
                    {"catalog_item_id": latte, "count": 2, "price": 4500.00},
                    {"catalog_item_id": croissant, "count": 3}
                ]}),
            )
            .await;
        assert_eq!(current.status, 201, "{:?}", current.json);
        assert_eq!(current.json["subtotal"], "9999.99");
        assert_eq!(current.json["discount_sum"], "1500.00");
        assert_eq!(current.json["discount_percentage"], "15");
        assert_eq!(current.json["amount"], "8499.99");
        let items = current.json["items"].as_array().expect("items");
        assert_eq!(items[0]["original_price"], "1500.00");
        assert_eq!(items[0]["price"], "4500.00");
        let shares: Vec<&str> = items
            .iter()
            .map(|i| i["discount"].as_str().expect("s"))
            .collect();
        assert_eq!(
            shares,
            ["1350.00", "150.00"],
            "shares add up to the discount"
        );
        // Both surfaces show the total.
        let id = current.json["id"].as_i64().expect("id");
        let x = kassa.x(reqwest::Method::GET, &key, "/payments", None).await;
        let payment = x.json["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|p| p["amount"] == json!(8499.99))
            .cloned();
        assert!(payment.is_some(), "{:?}", x.json);
        let got = kassa.get(&key, &format!("/invoices/{id}")).await.json;
        assert_eq!(got["items"].as_array().map(Vec::len), Some(2));
        // A flat amount with a discount.
        let flat = kassa
            .post(
                &key,
                "/invoices",
                json!({"phone_number": "87001234567", "amount": 1000, "discount_percentage": 10}),
            )
            .await;
        assert_eq!(flat.status, 201);
        assert_eq!(flat.json["amount"], "900.00");
        assert_eq!(flat.json["subtotal"], "1000.00");

        // Refused, naming the field, nothing stored.
        let before = kassa.get(&key, "/invoices").await.json["meta"]["total"].clone();
        let cases = [
            (
                json!({"phone_number": "87001234567", "amount": 100, "cart_items": [{"catalog_item_id": latte, "count": 1}]}),
                "amount",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": []}),
                "cart_items",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": "latte"}),
                "cart_items",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": 999_999, "count": 1}]}),
                "cart_items.0.catalog_item_id",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte, "count": 0}]}),
                "cart_items.0.count",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte, "count": 1, "price": 0}]}),
                "cart_items.0.price",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"Name": "X", "Price": 1, "Count": 1, "NomenclatureId": 1, "Type": "CATALOGUE", "UnitId": 1}]}),
                "cart_items.0.NomenclatureHistoryId",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"Name": "X", "Price": 1, "Count": 1, "NomenclatureId": 1, "Type": "OTHER", "UnitId": 1}]}),
                "cart_items.0.Type",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"Price": 1, "Count": 1}]}),
                "cart_items.0.Name",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte, "count": 1}], "discount_percentage": 100}),
                "discount_percentage",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": latte, "count": 100000, "price": 99999999}]}),
                "cart_items",
            ),
        ];
        for (body, field) in cases {
            let refused = kassa.post(&key, "/invoices", body.clone()).await;
            assert_eq!(refused.status, 422, "{body}: {:?}", refused.json);
            assert!(
                refused.json["errors"][field].is_array(),
                "{field} in {:?}",
                refused.json
            );
        }
        assert_eq!(
            kassa.get(&key, "/invoices").await.json["meta"]["total"],
            before
        );
    }
);

/// Makes catalog items `(name, price)`; their ids.
async fn catalog(kassa: &Kassa, key: &str, items: &[(&str, f64)]) -> Vec<i64> {
    let items: Vec<Value> = items
        .iter()
        .map(|(name, price)| json!({"name": name, "selling_price": price, "unit_id": 1}))
        .collect();
    let made = kassa.post(key, "/catalog", json!({"items": items})).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    made.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// A paid cart invoice of `lines` `(catalog_item_id, count)` with `discount`; its view.
async fn paid_cart(kassa: &Kassa, key: &str, lines: &[(i64, i64)], discount: Option<i64>) -> Value {
    let cart: Vec<Value> = lines
        .iter()
        .map(|(id, n)| json!({"catalog_item_id": id, "count": n}))
        .collect();
    let mut body = json!({"phone_number": "87001234567", "cart_items": cart});
    if let Some(d) = discount {
        body["discount_percentage"] = json!(d);
    }
    let made = kassa.post(key, "/invoices", body).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    let id = made.json["id"].as_i64().expect("id");
    let paid = kassa
        .post(key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
        .await;
    assert_eq!(paid.json["status"], "paid", "{:?}", paid.json);
    kassa.get(key, &format!("/invoices/{id}")).await.json
}

fn tiyn(text: &Value) -> i64 {
    let money = kassa::domain::Money::from_json(text).expect("money");
    money.tiyn()
}

on_both_databases!(
    return_items_refund_their_share_and_never_more_than_was_sold,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let ids = catalog(&kassa, &key, &[("Tea", 1000.0), ("Cake", 333.33)]).await;
        let (tea, cake) = (ids[0], ids[1]);
        let invoice = paid_cart(&kassa, &key, &[(tea, 3), (cake, 2)], Some(10)).await;
        let id = invoice["id"].as_i64().expect("id");
        let net = |line: &Value| {
            tiyn(&line["price"]) * line["count"].as_i64().expect("n") - tiyn(&line["discount"])
        };
        let tea_net = net(&invoice["items"][0]);
        let cake_net = net(&invoice["items"][1]);
        assert_eq!(tea_net + cake_net, tiyn(&invoice["amount"]));

        // One tea: a third of the tea line, floored.
        let one = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"return_items": [{"catalog_item_id": tea, "count": 1}], "reason": "cold"}),
            )
            .await;
        assert_eq!(one.status, 201, "{:?}", one.json);
        assert_eq!(tiyn(&one.json["refund"]["amount"]), tea_net / 3);
        assert_eq!(one.json["refund"]["items"][0]["catalog_item_id"], tea);
        assert_eq!(one.json["refund"]["items"][0]["count"], 1);

        // Refused, naming the field, nothing taken back.
        for (body, field) in [
            (
                json!({"return_items": [{"catalog_item_id": tea, "count": 3}]}),
                "return_items",
            ),
            (
                json!({"return_items": [{"catalog_item_id": 999_999, "count": 1}]}),
                "return_items",
            ),
            (
                json!({"return_items": [{"catalog_item_id": tea, "count": 0}]}),
                "return_items.0.count",
            ),
            (
                json!({"return_items": [{"count": 1}]}),
                "return_items.0.catalog_item_id",
            ),
            (json!({"return_items": []}), "return_items"),
            (
                json!({"amount": 10, "return_items": [{"catalog_item_id": tea, "count": 1}]}),
                "amount",
            ),
        ] {
            let refused = kassa
                .post(&key, &format!("/invoices/{id}/refund"), body.clone())
                .await;
            assert_eq!(refused.status, 422, "{body}: {:?}", refused.json);
            assert!(
                refused.json["errors"][field].is_array(),
                "{field}: {:?}",
                refused.json
            );
        }
        // The rest: everything paid comes back, to the tiyn.
        let rest = kassa
            .post(&key, &format!("/invoices/{id}/refund"), json!({"return_items": [{"catalog_item_id": tea, "count": 2}, {"catalog_item_id": cake, "count": 2}]}))
            .await;
        assert_eq!(rest.status, 201, "{:?}", rest.json);
        kassa.step().await;
        let after = kassa.get(&key, &format!("/invoices/{id}")).await.json;
        assert_eq!(after["status"], "refunded", "{after}");
        assert_eq!(after["total_refunded"], invoice["amount"]);
        let more = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"return_items": [{"catalog_item_id": cake, "count": 1}]}),
            )
            .await;
        assert!(more.status == 400 || more.status == 422, "{:?}", more.json);

        // A flat invoice has no lines to take back.
        let flat = kassa
            .post(
                &key,
                "/invoices",
                json!({"phone_number": "87001234567", "amount": 500}),
            )
            .await;
        let flat_id = flat.json["id"].as_i64().expect("id");
        kassa
            .post(&key, &format!("/sandbox/invoices/{flat_id}/pay"), json!({}))
            .await;
        let refused = kassa
            .post(
                &key,
                &format!("/invoices/{flat_id}/refund"),
                json!({"return_items": [{"catalog_item_id": tea, "count": 1}]}),
            )
            .await;
        assert_eq!(refused.status, 422, "{:?}", refused.json);
        assert!(refused.json["errors"]["return_items"].is_array());
    }
);

on_both_databases!(
    racing_return_items_never_take_back_more_than_was_sold,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let ids = catalog(&kassa, &key, &[("Bun", 250.0)]).await;
        let invoice = paid_cart(&kassa, &key, &[(ids[0], 5)], None).await;
        let id = invoice["id"].as_i64().expect("id");
        let path = format!("/invoices/{id}/refund");
        let requests = (0..12).map(|_| {
            kassa.post(
                &key,
                &path,
                json!({"return_items": [{"catalog_item_id": ids[0], "count": 1}]}),
            )
        });
        let answers = futures::future::join_all(requests).await;
        let made = answers.iter().filter(|a| a.status == 201).count();
        assert_eq!(
            made,
            5,
            "{:?}",
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        assert!(answers
            .iter()
            .all(|a| a.status == 201 || a.status == 422 || a.status == 400));
        let db = test.db();
        assert_eq!(
            common::count(
                &db,
                "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM refund_items"
            )
            .await,
            5
        );
        assert_eq!(
            common::count(
                &db,
                "SELECT CAST(SUM(returned_count) AS BIGINT) AS n FROM invoice_items"
            )
            .await,
            5
        );
        assert_eq!(
            common::count(&db, "SELECT CAST(SUM(amount) AS BIGINT) AS n FROM refunds").await,
            125_000,
            "five buns, 1250.00 in all"
        );
    }
);

on_both_databases!(
    a_subscription_bills_its_cart_each_period,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let ids = catalog(&kassa, &key, &[("Coffee beans", 4500.0), ("Filter", 150.0)]).await;
        let sub = kassa
            .post(
                &key,
                "/subscriptions",
                json!({"phone_number": "87001110005", "billing_period": "monthly", "bill_immediately": true,
                       "cart_items": [{"catalog_item_id": ids[0], "count": 2}, {"catalog_item_id": ids[1], "count": 1}]}),
            )
            .await;
        assert_eq!(sub.status, 201, "{:?}", sub.json);
        assert_eq!(sub.json["amount"], "9150.00", "the cart's sum");
        assert_eq!(sub.json["cart_items"][0]["count"], 2);
        let sub_id = sub.json["id"].as_i64().expect("id");
        kassa.step().await;
        let billed = kassa
            .get(&key, &format!("/subscriptions/{sub_id}/invoices"))
            .await
            .json;
        let first = billed["data"][0]["id"].as_i64().expect("invoice");
        let invoice = kassa.get(&key, &format!("/invoices/{first}")).await.json;
        assert_eq!(invoice["amount"], "9150.00");
        assert_eq!(invoice["items"].as_array().map(Vec::len), Some(2));
        let op: u64 = invoice["kaspi_invoice_id"]
            .as_str()
            .expect("sent")
            .parse()
            .expect("n");
        assert!(kassa
            .sim()
            .operation(op)
            .expect("op")
            .comment
            .contains("Coffee beans ×2"));

        // A new cart applies from the next period.
        let put = kassa
            .http
            .put(kassa.url(&format!("/subscriptions/{sub_id}")))
            .header("X-API-Key", &key)
            .json(&json!({"cart_items": [{"catalog_item_id": 999_999, "count": 1}]}))
            .send()
            .await
            .expect("sent");
        let put = Answer::read(put).await;
        assert_eq!(put.status, 422, "{:?}", put.json);
        assert!(put.json["errors"]["cart_items.0.catalog_item_id"].is_array());
        let put = kassa
            .http
            .put(kassa.url(&format!("/subscriptions/{sub_id}")))
            .header("X-API-Key", &key)
            .json(&json!({"cart_items": [{"catalog_item_id": ids[1], "count": 3}]}))
            .send()
            .await
            .expect("sent");
        let put = Answer::read(put).await;
        assert_eq!(put.status, 200, "{:?}", put.json);
        assert_eq!(put.json["amount"], "450.00");
        let moved = kassa
            .post(&key, "/sandbox/clock/advance", json!({"days": 32}))
            .await;
        assert_eq!(moved.status, 200);
        let billed = kassa
            .get(&key, &format!("/subscriptions/{sub_id}/invoices"))
            .await
            .json;
        assert_eq!(billed["data"].as_array().map(Vec::len), Some(2), "{billed}");
        let second = billed["data"][0]["id"].as_i64().expect("invoice");
        let invoice = kassa.get(&key, &format!("/invoices/{second}")).await.json;
        assert_eq!(invoice["amount"], "450.00");
        assert_eq!(invoice["items"][0]["name"], "Filter");
        assert_eq!(invoice["items"][0]["count"], 3);
        let first_again = kassa.get(&key, &format!("/invoices/{first}")).await.json;
        assert_eq!(
            first_again["items"][0]["name"], "Coffee beans",
            "what was billed stays"
        );
    }
);

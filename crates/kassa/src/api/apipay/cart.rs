//! `cart_items` of an invoice, in both of ApiPay's shapes, and `discount_percentage`: the
//! amount they come to and the lines stored with the invoice.
//!
//! - The current shape, `{catalog_item_id, count, price?}`: an item of the organization's
//!   catalog, at its price unless `price` overrides it.
//! - The seed's Kaspi-native shape, `{Name, Price, Count, NomenclatureId, Type, UnitId,
//!   NomenclatureHistoryId}`: priced as sent (its ids are Kaspi's, kept as they are).
//!
//! A line's shape is told by its keys, so one cart may mix them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fields;
use super::F;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::parse_amount;
use crate::domain::{cart_totals, CartError, Money};
use crate::gateway::Gateway;
use crate::store::{Cart, NewInvoiceItem};

/// The most lines a cart holds.
const MAX_LINES: usize = 100;
/// The most of one line.
const MAX_COUNT: i64 = 100_000;

/// One line as read, before the catalog is consulted.
enum Line {
    Catalog {
        id: i64,
        count: i64,
        price: Option<Money>,
    },
    Native(NewInvoiceItem),
}

fn money(
    value: Option<&Value>,
    field: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<Money> {
    match value {
        None | Some(Value::Null) => {
            if required {
                errors.add(field, format!("The {field} field is required."));
            }
            None
        }
        Some(v) => {
            let mut local = FieldErrors::new();
            let price = parse_amount(v, field, &mut local);
            if price.is_none() {
                errors.add(
                    field,
                    format!("The {field} must be a number between 0.01 and 99999999.99 with at most two decimal places."),
                );
            }
            price
        }
    }
}

fn required_integer(
    line: &Map<String, Value>,
    key: &str,
    field: &str,
    min: i64,
    max: i64,
    errors: &mut FieldErrors,
) -> Option<i64> {
    match line.get(key) {
        None | Some(Value::Null) => {
            errors.add(field, format!("The {field} field is required."));
            None
        }
        // A whole number written as 2.0 is still two.
        Some(Value::Number(n))
            if n.as_i64().is_none() && n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
        {
            let whole = n.as_f64().map(|f| f as i64);
            fields::integer(whole.map(Value::from).as_ref(), field, min, max, errors)
        }
        Some(v) => fields::integer(Some(v), field, min, max, errors),
    }
}

fn read_line(index: usize, value: &Value, errors: &mut FieldErrors) -> Option<Line> {
    let Some(line) = value.as_object() else {
        errors.add(
            format!("cart_items.{index}"),
            "Each cart item must be an object.",
        );
        return None;
    };
    let field = |key: &str| format!("cart_items.{index}.{key}");
    if line.contains_key("catalog_item_id") {
        let id = required_integer(
            line,
            "catalog_item_id",
            &field("catalog_item_id"),
            1,
            i64::MAX,
            errors,
        );
        let count = required_integer(line, "count", &field("count"), 1, MAX_COUNT, errors);
        let price = money(line.get("price"), &field("price"), false, errors);
        return Some(Line::Catalog {
            id: id?,
            count: count?,
            price,
        });
    }
    let name = match line.get("Name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
            Some(s.trim().to_owned())
        }
        Some(Value::String(s)) if s.chars().count() > 255 => {
            errors.add(
                field("Name"),
                "The Name must not be greater than 255 characters.",
            );
            None
        }
        None | Some(Value::Null) => {
            errors.add(
                field("Name"),
                "The Name field is required (or give catalog_item_id for a catalog item).",
            );
            None
        }
        Some(_) => {
            errors.add(field("Name"), "The Name must be a non-empty string.");
            None
        }
    };
    let price = money(line.get("Price"), &field("Price"), true, errors);
    let count = required_integer(line, "Count", &field("Count"), 1, MAX_COUNT, errors);
    let nomenclature = required_integer(
        line,
        "NomenclatureId",
        &field("NomenclatureId"),
        i64::MIN,
        i64::MAX,
        errors,
    );
    let unit = required_integer(line, "UnitId", &field("UnitId"), 0, i64::MAX, errors);
    let kind = match line.get("Type") {
        Some(Value::String(t)) if t == "CATALOGUE" || t == "FAST_SALE" => Some(t.clone()),
        None | Some(Value::Null) => {
            errors.add(field("Type"), "The Type field is required.");
            None
        }
        Some(_) => {
            errors.add(
                field("Type"),
                "The selected Type is invalid; expected CATALOGUE or FAST_SALE.",
            );
            None
        }
    };
    let history = match line.get("NomenclatureHistoryId") {
        None | Some(Value::Null) => {
            if kind.as_deref() == Some("CATALOGUE") {
                errors.add(
                    field("NomenclatureHistoryId"),
                    "The NomenclatureHistoryId field is required when Type is CATALOGUE.",
                );
            }
            None
        }
        Some(v) => fields::integer(
            Some(v),
            &field("NomenclatureHistoryId"),
            i64::MIN,
            i64::MAX,
            errors,
        ),
    };
    let (name, price, count, kind) = (name?, price?, count?, kind?);
    Some(Line::Native(NewInvoiceItem {
        catalog_item_id: None,
        name,
        price,
        original_price: price,
        count,
        unit_id: unit,
        discount: Money::ZERO,
        item_type: Some(kind),
        nomenclature_id: nomenclature,
        nomenclature_history_id: history,
    }))
}

/// The invoice's amount and, for a cart or a discount, its [`Cart`]: from `amount`, or from
/// `cart_items` (not both), less `discount_percentage`. Problems go to `errors` under their
/// field; `None` then.
pub(super) async fn priced(
    gateway: &Gateway,
    org_id: i64,
    amount: Option<&Value>,
    cart_items: Option<&Value>,
    discount: Option<&Value>,
    errors: &mut FieldErrors,
) -> Result<Option<(Money, Option<Cart>)>, ApiError> {
    let percent = fields::integer(discount, "discount_percentage", 1, 99, errors)
        .and_then(|p| u8::try_from(p).ok());
    let cart_items = cart_items.filter(|c| !c.is_null());
    let Some(cart_items) = cart_items else {
        let amount = match amount {
            None | Some(Value::Null) => {
                errors.add("amount", "The amount field is required.");
                None
            }
            Some(v) => parse_amount(v, "amount", errors),
        };
        let (Some(amount), true) = (amount, errors.is_empty()) else {
            return Ok(None);
        };
        let Some(percent) = percent else {
            return Ok(Some((amount, None)));
        };
        return Ok(discounted(
            &[(amount, 1)],
            Some(percent),
            Vec::new(),
            errors,
        ));
    };
    if amount.is_some_and(|a| !a.is_null()) {
        errors.add(
            "amount",
            "The amount field is prohibited when cart items is present.",
        );
    }
    let Some(list) = fields::list(cart_items, "cart_items", MAX_LINES, errors) else {
        return Ok(None);
    };
    let lines: Vec<Option<Line>> = list
        .iter()
        .enumerate()
        .map(|(i, v)| read_line(i, v, errors))
        .collect();
    let wanted: Vec<i64> = lines
        .iter()
        .filter_map(|l| match l {
            Some(Line::Catalog { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    let catalog: HashMap<i64, crate::store::CatalogItem> = gateway
        .store()
        .catalog()
        .items(org_id, wanted)
        .await
        .map_err(|e| ApiError::store(F, e))?
        .into_iter()
        .map(|item| (item.id, item))
        .collect();
    let mut items = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        match line {
            Some(Line::Catalog { id, count, price }) => match catalog.get(&id) {
                Some(item) => items.push(NewInvoiceItem {
                    catalog_item_id: Some(id),
                    name: item.name.clone(),
                    price: price.unwrap_or(item.selling_price),
                    original_price: item.selling_price,
                    count,
                    unit_id: Some(item.unit_id),
                    discount: Money::ZERO,
                    item_type: None,
                    nomenclature_id: None,
                    nomenclature_history_id: None,
                }),
                None => errors.add(
                    format!("cart_items.{i}.catalog_item_id"),
                    "The selected catalog item does not exist in this organization's catalog.",
                ),
            },
            Some(Line::Native(item)) => items.push(item),
            None => {}
        }
    }
    if !errors.is_empty() {
        return Ok(None);
    }
    let prices: Vec<(Money, i64)> = items.iter().map(|i| (i.price, i.count)).collect();
    Ok(discounted(&prices, percent, items, errors))
}

/// The amount and cart of `lines` (with their `items`, empty for a flat amount) less
/// `percent`; an amount outside ApiPay's range is an error on the field that made it.
fn discounted(
    lines: &[(Money, i64)],
    percent: Option<u8>,
    mut items: Vec<NewInvoiceItem>,
    errors: &mut FieldErrors,
) -> Option<(Money, Option<Cart>)> {
    let field = if items.is_empty() {
        "amount"
    } else {
        "cart_items"
    };
    let totals = match cart_totals(lines, percent) {
        Ok(totals) => totals,
        Err(CartError::Empty) => {
            errors.add(field, "The cart items field must have at least 1 item.");
            return None;
        }
        Err(CartError::TooLarge) => {
            errors.add(field, "The total must not be greater than 99999999.99.");
            return None;
        }
    };
    if totals.amount < Money::from_tiyn(1) || totals.amount > Money::from_tiyn(9_999_999_999) {
        errors.add(
            field,
            "The total after the discount must be between 0.01 and 99999999.99.",
        );
        return None;
    }
    for (item, share) in items.iter_mut().zip(&totals.line_discounts) {
        item.discount = *share;
    }
    Some((
        totals.amount,
        Some(Cart {
            subtotal: totals.subtotal,
            discount_percentage: percent.map(i64::from),
            discount_sum: totals.discount_sum,
            items,
        }),
    ))
}

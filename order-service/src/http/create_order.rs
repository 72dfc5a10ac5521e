//! The body of `POST /orders`, turned field by field into domain values. Every bad field is reported
//! with its JSON pointer, rather than only the first; rules about the order as a whole (at least one
//! line, one currency) are the aggregate's and are checked once the fields are valid.

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::problem::FieldError;
use crate::domain::{check_unit_price, Currency, DomainError, OrderLine, Quantity, UnitPrice};

const ORDER_FIELDS: &[&str] = &["customerId", "lines"];
const LINE_FIELDS: &[&str] = &["productId", "quantity", "unitPrice", "currency"];

/// Prices next to an unknown currency are still checked, with the most fraction digits any has.
const MAX_FRACTION_DIGITS: u32 = 2;

pub struct CreateOrder {
    pub customer_id: Uuid,
    pub lines: Vec<OrderLine>,
}

pub fn parse(body: &Value) -> Result<CreateOrder, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::at("", "must be a JSON object")]);
    };
    unknown_fields(object, ORDER_FIELDS, "", &mut errors);
    let customer_id = field(object, "customerId", "", &mut errors, |v| {
        parse_uuid(v.as_str().unwrap_or_default())
    });
    let lines = field(object, "lines", "", &mut errors, |v| {
        v.as_array().ok_or_else(|| "must be an array".to_owned())
    })
    .map(|items| {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_line(item, &format!("/lines/{i}"), &mut errors))
            .collect::<Vec<_>>()
    });
    match (customer_id, lines) {
        (Some(customer_id), Some(lines)) if errors.is_empty() => Ok(CreateOrder {
            customer_id,
            lines: lines.into_iter().flatten().collect(),
        }),
        _ => Err(errors),
    }
}

/// Where in the request body an order-level rule of the aggregate was broken.
pub fn pointer_of(rule: &DomainError) -> String {
    match rule {
        DomainError::MixedCurrencies { line, .. } => format!("/lines/{line}/currency"),
        DomainError::NoLines | DomainError::TooManyLines { .. } => "/lines".to_owned(),
        _ => String::new(),
    }
}

/// A UUID in its canonical hyphenated form only, so that each order has one spelling of its id.
pub fn parse_uuid(text: &str) -> Result<Uuid, String> {
    if text.len() == 36 {
        if let Ok(uuid) = Uuid::parse_str(text) {
            return Ok(uuid);
        }
    }
    Err("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000".to_owned())
}

fn parse_line(item: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<OrderLine> {
    let Some(object) = item.as_object() else {
        errors.push(FieldError::at(at, "must be a JSON object"));
        return None;
    };
    unknown_fields(object, LINE_FIELDS, at, errors);
    let product_id = field(object, "productId", at, errors, |v| {
        parse_uuid(v.as_str().unwrap_or_default())
    });
    let quantity = field(object, "quantity", at, errors, parse_quantity);
    let currency = field(object, "currency", at, errors, |v| {
        let code = v.as_str().ok_or("must be a string such as \"USD\"")?;
        Currency::parse(code).map_err(|e| e.to_string())
    });
    let unit_price = field(object, "unitPrice", at, errors, |v| {
        parse_unit_price(v, currency)
    })
    .flatten();
    Some(OrderLine::new(product_id?, quantity?, unit_price?))
}

fn parse_quantity(value: &Value) -> Result<Quantity, String> {
    let number = value.as_i64().ok_or_else(|| {
        format!(
            "must be an integer from {} to {}",
            Quantity::MIN,
            Quantity::MAX
        )
    })?;
    Quantity::new(number).map_err(|e| e.to_string())
}

/// `None` when the price is fine but its currency is not, so there is no price to build.
fn parse_unit_price(
    value: &Value,
    currency: Option<Currency>,
) -> Result<Option<UnitPrice>, String> {
    let text = value
        .as_str()
        .ok_or("must be a decimal string such as \"10.00\", not a JSON number")?;
    let amount = parse_decimal(text)?;
    match currency {
        Some(currency) => UnitPrice::new(amount, currency)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => check_unit_price(amount, MAX_FRACTION_DIGITS)
            .map(|()| None)
            .map_err(|e| e.to_string()),
    }
}

/// Plain decimal notation only: an optional minus, digits, and optionally a point and more digits; no
/// exponent, sign `+`, spaces or thousands separators.
fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return Err(format!(
            "{text:?} is not a decimal number such as \"10.00\""
        ));
    }
    Decimal::from_str_exact(text).map_err(|_| format!("{text:?} is out of range"))
}

/// Reads `object[name]`, reporting it as missing or as `parse` rejects it.
fn field<'v, T>(
    object: &'v Map<String, Value>,
    name: &str,
    at: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&'v Value) -> Result<T, String>,
) -> Option<T> {
    let pointer = format!("{at}/{name}");
    let Some(value) = object.get(name) else {
        errors.push(FieldError::at(pointer, "is required"));
        return None;
    };
    parse(value)
        .map_err(|detail| errors.push(FieldError::at(pointer, detail)))
        .ok()
}

/// Unknown fields are errors, so a misspelt optional field cannot pass unnoticed.
fn unknown_fields(
    object: &Map<String, Value>,
    known: &[&str],
    at: &str,
    errors: &mut Vec<FieldError>,
) {
    for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
        // RFC 6901 escaping, since a name may contain `~` or `/`.
        let escaped = name.replace('~', "~0").replace('/', "~1");
        errors.push(FieldError::at(format!("{at}/{escaped}"), "unknown field"));
    }
}

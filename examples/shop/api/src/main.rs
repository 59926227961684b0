//! The shop's HTTP API. `POST /orders` with `{"customer", "item", "amount"}`
//! writes the order to the `orders` table (partition: the day, sort: a new
//! id) and answers 201 with its day and id once it is durable;
//! `GET /orders/DAY/ID` answers the order as it stands (its `status` moves
//! from `placed` to `receipted` once its receipt is stored).

use nimbus_sdk::tables::{self, PutCondition};
use serde_json::{Value, json};
use wstd::http::body::Body;
use wstd::http::{Error, Method, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::POST, ["orders"]) => {
            let body = request.body_mut().contents().await?.to_vec();
            place(&body)
        }
        (&Method::GET, ["orders", day, id]) => match tables::get("orders", day, Some(id)) {
            Ok(Some(item)) => respond(StatusCode::OK, &item.document),
            Ok(None) => respond(StatusCode::NOT_FOUND, "{\"error\":\"no such order\"}"),
            Err(e) => unavailable(&format!("{e:?}")),
        },
        _ => respond(StatusCode::NOT_FOUND, "{\"error\":\"no such resource\"}"),
    }
}

fn place(body: &[u8]) -> Result<Response<Body>, Error> {
    let order: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(order)) => Value::Object(order),
        _ => {
            return respond(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"send a JSON object\"}",
            );
        }
    };
    let (Some(customer), Some(item), Some(amount)) = (
        order["customer"].as_str(),
        order["item"].as_str(),
        order["amount"].as_u64(),
    ) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "{\"error\":\"an order has `customer` and `item` (text) and `amount` (a whole number)\"}",
        );
    };
    let now = wasip2::clocks::wall_clock::now();
    let day = days::day_of(now.seconds);
    let id = format!("{:016x}", wasip2::random::random::get_random_u64());
    let document = json!({
        "day": day, "id": id, "customer": customer, "item": item,
        "amount": amount, "status": "placed",
    });
    match tables::put("orders", &document.to_string(), PutCondition::IfAbsent) {
        Ok(_) => {
            nimbus_sdk::log::info(&format!("placed order {day}/{id}"));
            respond(
                StatusCode::CREATED,
                &json!({ "day": day, "id": id }).to_string(),
            )
        }
        Err(e) => unavailable(&format!("{e:?}")),
    }
}

fn unavailable(error: &str) -> Result<Response<Body>, Error> {
    nimbus_sdk::log::error(&format!("the orders table failed: {error}"));
    respond(StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"try again\"}")
}

fn respond(status: StatusCode, body: &str) -> Result<Response<Body>, Error> {
    let mut response = Response::new(format!("{body}\n").into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(response)
}

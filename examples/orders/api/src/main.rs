//! `POST /orders` with an order as the body: queues it and answers 202 with
//! the message id, once the order is durably on the queue.

use wstd::http::body::Body;
use wstd::http::{Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let order = request.body_mut().contents().await?.to_vec();
    if order.is_empty() {
        return respond(StatusCode::BAD_REQUEST, "send the order as the request body\n");
    }
    match nimbus_sdk::queue::send("orders", &order) {
        Ok(id) => {
            nimbus_sdk::log::info(&format!("queued order {id}"));
            respond(StatusCode::ACCEPTED, &format!("{{\"order_id\":\"{id}\"}}\n"))
        }
        Err(e) => {
            nimbus_sdk::log::error(&format!("could not queue the order: {e:?}"));
            respond(StatusCode::SERVICE_UNAVAILABLE, "the order could not be queued; try again\n")
        }
    }
}

fn respond(status: StatusCode, body: &str) -> Result<Response<Body>, Error> {
    let mut response = Response::new(body.to_owned().into());
    *response.status_mut() = status;
    Ok(response)
}

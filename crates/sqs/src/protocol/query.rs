//! The query protocol: the operation and its input as form parameters
//! (`Action=SendMessage&QueueUrl=...&MessageAttribute.1.Name=...`, in the
//! body or the URL), answers as XML in the
//! `http://queue.amazonaws.com/doc/2012-11-05/` namespace. Parameters are
//! turned into the JSON protocol's input shapes (numbered parameters into
//! lists and maps, numeric ones into numbers), so one operation layer
//! serves both; outputs are written back as the query protocol's XML
//! (flattened lists and maps).

use super::response;
use crate::error::{SqsError, SqsErrorKind};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";
/// Most parameters one request may carry (a batch of ten entries with ten
/// attributes each needs about 350).
const MAX_PARAMETERS: usize = 2000;
/// Deepest parameter name (`SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue` has 6 parts).
const MAX_DEPTH: usize = 8;

/// Numbered parameters that are lists in the JSON shapes: (query name, JSON name).
const LISTS: &[(&str, &str)] = &[
    ("AttributeName", "AttributeNames"),
    ("MessageAttributeName", "MessageAttributeNames"),
    ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
    ("SendMessageBatchRequestEntry", "Entries"),
    ("DeleteMessageBatchRequestEntry", "Entries"),
    ("ChangeMessageVisibilityBatchRequestEntry", "Entries"),
    ("TagKey", "TagKeys"),
];
/// Numbered parameters that are maps: (query name, JSON name, key field, value field).
const MAPS: &[(&str, &str, &str, &str)] = &[
    ("Attribute", "Attributes", "Name", "Value"),
    ("MessageAttribute", "MessageAttributes", "Name", "Value"),
    (
        "MessageSystemAttribute",
        "MessageSystemAttributes",
        "Name",
        "Value",
    ),
    ("Tag", "tags", "Key", "Value"),
];
/// The operations without an output (their answer holds only metadata).
const NO_RESULT: &[&str] = &["DeleteMessage", "ChangeMessageVisibility", "PurgeQueue"];
/// Parameters that are integers in the JSON shapes.
const INTEGERS: &[&str] = &[
    "MaxNumberOfMessages",
    "VisibilityTimeout",
    "WaitTimeSeconds",
    "DelaySeconds",
    "MaxResults",
];

enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn malformed(why: impl Into<String>) -> SqsError {
    SqsError::new(SqsErrorKind::MalformedQueryString, why)
}

pub fn decode(parts: &http::request::Parts, body: &[u8]) -> Result<(String, Value), SqsError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(query) = parts.uri.query() {
        pairs.extend(
            form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| !k.starts_with("X-Amz-"))
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    if !body.is_empty() {
        let form = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(SqsError::invalid(
                "a query-protocol request has a form body (application/x-www-form-urlencoded); a JSON request names its operation in X-Amz-Target",
            ));
        }
        pairs.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    if pairs.len() > MAX_PARAMETERS {
        return Err(malformed(format!(
            "a request carries at most {MAX_PARAMETERS} parameters"
        )));
    }
    let mut root = BTreeMap::new();
    let mut action = None;
    for (key, value) in pairs {
        match key.as_str() {
            "Action" => action = Some(value),
            "Version" => {}
            _ => insert(&mut root, &key, value)?,
        }
    }
    let action = action.ok_or_else(|| SqsError::missing("Action"))?;
    // The queue URL may be the request's own path (older SDKs post to it).
    let mut input = object(root)?;
    if !input.contains_key("QueueUrl") {
        let path = parts.uri.path();
        if path.trim_matches('/').split('/').count() == 2 {
            input.insert("QueueUrl".to_owned(), Value::from(path));
        }
    }
    Ok((action, Value::Object(input)))
}

fn insert(root: &mut BTreeMap<String, Node>, key: &str, value: String) -> Result<(), SqsError> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.len() > MAX_DEPTH || segments.iter().any(|s| s.is_empty()) {
        return Err(malformed(format!("`{key}` is not a parameter name")));
    }
    let mut branch = root;
    for (i, segment) in segments.iter().enumerate() {
        if i + 1 == segments.len() {
            if branch.contains_key(*segment) {
                return Err(malformed(format!("the parameter `{key}` is given twice")));
            }
            branch.insert((*segment).to_owned(), Node::Leaf(value));
            return Ok(());
        }
        let node = branch
            .entry((*segment).to_owned())
            .or_insert_with(|| Node::Branch(BTreeMap::new()));
        branch = match node {
            Node::Branch(next) => next,
            Node::Leaf(_) => {
                return Err(malformed(format!(
                    "the parameter `{key}` conflicts with another"
                )));
            }
        };
    }
    Ok(())
}

/// A branch's children in their numbered order, if every key is a number.
fn numbered(branch: BTreeMap<String, Node>, name: &str) -> Result<Vec<Node>, SqsError> {
    let mut items = Vec::with_capacity(branch.len());
    for (index, node) in branch {
        let n: u32 = index.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            malformed(format!(
                "`{name}.{index}`: `{name}` parameters are numbered from 1"
            ))
        })?;
        items.push((n, node));
    }
    items.sort_by_key(|(n, _)| *n);
    Ok(items.into_iter().map(|(_, node)| node).collect())
}

fn object(branch: BTreeMap<String, Node>) -> Result<Map<String, Value>, SqsError> {
    let mut out = Map::new();
    for (key, node) in branch {
        if let Some((_, json_name)) = LISTS.iter().find(|(q, _)| *q == key) {
            let items = match node {
                Node::Leaf(text) => vec![Value::from(text)],
                Node::Branch(children) => numbered(children, &key)?
                    .into_iter()
                    .map(value)
                    .collect::<Result<_, _>>()?,
            };
            out.insert((*json_name).to_owned(), Value::Array(items));
        } else if let Some((_, json_name, key_field, value_field)) =
            MAPS.iter().find(|(q, ..)| *q == key)
        {
            let Node::Branch(children) = node else {
                return Err(malformed(format!(
                    "`{key}` parameters are numbered: `{key}.1.{key_field}`"
                )));
            };
            let mut map = Map::new();
            for item in numbered(children, &key)? {
                let Node::Branch(mut fields) = item else {
                    return Err(malformed(format!(
                        "each `{key}.N` has a `{key_field}` and a `{value_field}`"
                    )));
                };
                let (Some(Node::Leaf(name)), Some(entry)) =
                    (fields.remove(*key_field), fields.remove(*value_field))
                else {
                    return Err(malformed(format!(
                        "each `{key}.N` has a `{key_field}` and a `{value_field}`"
                    )));
                };
                map.insert(name, value(entry)?);
            }
            out.insert((*json_name).to_owned(), Value::Object(map));
        } else {
            let converted = match node {
                Node::Leaf(text) if INTEGERS.contains(&key.as_str()) => {
                    match text.trim().parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => Value::from(text),
                    }
                }
                other => value(other)?,
            };
            out.insert(key, converted);
        }
    }
    Ok(out)
}

fn value(node: Node) -> Result<Value, SqsError> {
    match node {
        Node::Leaf(text) => Ok(Value::from(text)),
        Node::Branch(children) => Ok(Value::Object(object(children)?)),
    }
}

pub fn answer(action: &str, output: &Value, request_id: &str) -> http::Response<Full<Bytes>> {
    let mut xml = String::with_capacity(256);
    xml.push_str("<?xml version=\"1.0\"?>");
    xml.push_str(&format!("<{action}Response xmlns=\"{NAMESPACE}\">"));
    // Clients look for the result element of every operation that has an
    // output, even an empty one (a receive that found nothing).
    if !NO_RESULT.contains(&action) {
        xml.push_str(&format!("<{action}Result>"));
        if let Some(fields) = output.as_object() {
            write_fields(&mut xml, action, fields);
        }
        xml.push_str(&format!("</{action}Result>"));
    }
    xml.push_str("<ResponseMetadata><RequestId>");
    escape(&mut xml, request_id);
    xml.push_str(&format!(
        "</RequestId></ResponseMetadata></{action}Response>"
    ));
    response(
        http::StatusCode::OK,
        "text/xml",
        request_id,
        xml.into_bytes(),
    )
}

pub fn error(error: &SqsError, request_id: &str) -> http::Response<Full<Bytes>> {
    let mut xml = String::with_capacity(256);
    xml.push_str(&format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>"
    ));
    xml.push_str(error.kind.fault());
    xml.push_str("</Type><Code>");
    xml.push_str(error.kind.query_code());
    xml.push_str("</Code><Message>");
    escape(&mut xml, &error.message);
    xml.push_str("</Message><Detail/></Error><RequestId>");
    escape(&mut xml, request_id);
    xml.push_str("</RequestId></ErrorResponse>");
    response(
        error.kind.status(),
        "text/xml",
        request_id,
        xml.into_bytes(),
    )
}

/// The XML element a list field's items are written as (lists are
/// flattened: the items stand in the parent, one element each).
fn item_name(action: &str, field: &str) -> Option<String> {
    Some(match field {
        "Messages" => "Message".to_owned(),
        "Successful" => format!("{action}ResultEntry"),
        "Failed" => "BatchResultErrorEntry".to_owned(),
        "QueueUrls" => "QueueUrl".to_owned(),
        _ => return None,
    })
}

fn write_fields(xml: &mut String, action: &str, fields: &Map<String, Value>) {
    for (name, value) in fields {
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            ("Attributes" | "MessageAttributes", Value::Object(map)) => {
                let element = if name == "Attributes" {
                    "Attribute"
                } else {
                    "MessageAttribute"
                };
                for (key, entry) in map {
                    xml.push_str(&format!("<{element}><Name>"));
                    escape(xml, key);
                    xml.push_str("</Name>");
                    write_element(xml, action, "Value", entry);
                    xml.push_str(&format!("</{element}>"));
                }
            }
            (_, Value::Array(items)) => {
                let element = item_name(action, name).unwrap_or_else(|| name.clone());
                for item in items {
                    write_element(xml, action, &element, item);
                }
            }
            _ => write_element(xml, action, name, value),
        }
    }
}

fn write_element(xml: &mut String, action: &str, name: &str, value: &Value) {
    xml.push('<');
    xml.push_str(name);
    xml.push('>');
    match value {
        Value::Object(fields) => write_fields(xml, action, fields),
        Value::String(text) => escape(xml, text),
        Value::Null => {}
        other => xml.push_str(&other.to_string()),
    }
    xml.push_str("</");
    xml.push_str(name);
    xml.push('>');
}

/// Text as XML character data. A carriage return is written as a
/// reference so parsers keep it (they turn a literal one into a line
/// feed, which would change the body its MD5 was taken of); characters
/// XML 1.0 cannot carry at all become U+FFFD.
fn escape(xml: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\r' => xml.push_str("&#xD;"),
            '\t' | '\n' => xml.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => xml.push('\u{FFFD}'),
            c => xml.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(uri: &str) -> http::request::Parts {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn numbered_parameters_become_the_json_shapes() {
        let body = "Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq\
            &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two\
            &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one\
            &SendMessageBatchRequestEntry.1.DelaySeconds=5\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=n\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=Number\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=7";
        let (action, input) = decode(&parts("/"), body.as_bytes()).unwrap();
        assert_eq!(action, "SendMessageBatch");
        assert_eq!(
            input,
            json!({
                "QueueUrl": "http://h/000000000000/q",
                "Entries": [
                    {"Id": "a", "MessageBody": "one", "DelaySeconds": 5,
                     "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "7"}}},
                    {"Id": "b", "MessageBody": "two"},
                ]
            })
        );
        let body = "Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=x&MaxNumberOfMessages=10";
        let (_, input) = decode(&parts("/000000000000/q"), body.as_bytes()).unwrap();
        assert_eq!(
            input,
            json!({"AttributeNames": ["All"], "MessageAttributeNames": ["x"], "MaxNumberOfMessages": 10,
                   "QueueUrl": "/000000000000/q"})
        );
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for body in [
            "Action=A&Attribute.x.Name=a",
            "Action=A&Attribute.0.Name=a&Attribute.0.Value=b",
            "Action=A&Attribute=a",
            "Action=A&A=1&A.B=2",
            "Action=A&A..B=1",
            "Action=A&QueueUrl=a&QueueUrl=b",
        ] {
            let e = decode(&parts("/"), body.as_bytes()).unwrap_err();
            assert_eq!(e.kind, SqsErrorKind::MalformedQueryString, "{body}");
        }
        let e = decode(&parts("/"), b"QueueUrl=x").unwrap_err();
        assert_eq!(e.kind, SqsErrorKind::MissingParameter);
        let many = (0..=MAX_PARAMETERS)
            .map(|i| format!("P{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(decode(&parts("/"), many.as_bytes()).is_err());
    }

    #[test]
    fn outputs_are_written_as_flattened_xml() {
        let output = json!({
            "Messages": [{"MessageId": "m", "Body": "a<b & \r", "Attributes": {"ApproximateReceiveCount": "2"},
                          "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "7"}}}],
        });
        let response = answer("ReceiveMessage", &output, "rid");
        let body = read(response);
        assert!(
            body.contains("<ReceiveMessageResult><Message><Attribute>"),
            "{body}"
        );
        assert!(body.contains("<Message><Attribute><Name>ApproximateReceiveCount</Name><Value>2</Value></Attribute>"), "{body}");
        assert!(body.contains("<Body>a&lt;b &amp; &#xD;</Body>"), "{body}");
        assert!(body.contains("<MessageAttribute><Name>n</Name><Value><DataType>Number</DataType><StringValue>7</StringValue></Value></MessageAttribute>"), "{body}");
        assert!(body.contains("<RequestId>rid</RequestId>"), "{body}");
        // An empty result is still there; operations without output have none.
        let empty = read(answer("ReceiveMessage", &json!({}), "r"));
        assert!(
            empty.contains("<ReceiveMessageResult></ReceiveMessageResult>"),
            "{empty}"
        );
        let none = read(answer("DeleteMessage", &json!({}), "r"));
        assert!(
            !none.contains("Result>") && none.contains("<DeleteMessageResponse"),
            "{none}"
        );
    }

    fn read(response: http::Response<Full<Bytes>>) -> String {
        let collect = http_body_util::BodyExt::collect(response.into_body());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(collect).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

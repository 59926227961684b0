//! Message attributes between SQS and Nimbus: SQS attributes are typed
//! (`String`, `Number`, `Binary`, each with an optional `.label`), Nimbus's
//! are plain strings that functions read. A `String` attribute is stored as
//! its value; a `Number` as its text; a `Binary` as the base64 of its
//! bytes. When any attribute is not of type `String`, one more attribute,
//! [`TYPES_ATTRIBUTE`], records the types (`name=Type,name=Type`), so a
//! receive through SQS gives each back with its type and the same MD5 as
//! the send. Nimbus's own `traceparent` is never shown as an SQS attribute.
//! Also the MD5 digests SQS clients check.

use crate::error::SqsError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use nimbus_store::queue::TRACEPARENT_ATTRIBUTE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The stored attribute naming the SQS types of the others, when one of
/// them is not a plain `String`. Clients may not send an attribute by
/// this name.
pub const TYPES_ATTRIBUTE: &str = "sqs.types";
/// Longest custom type label (`Number.float`: the part after the dot).
const MAX_TYPE_LEN: usize = 256;

/// An SQS message attribute as both protocols carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeValue {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Base64, in both protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
    // Reserved by SQS and never implemented; refused when given.
    #[serde(default, skip_serializing)]
    pub string_list_values: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub binary_list_values: Option<serde_json::Value>,
}

/// What a type is carried as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    String,
    Number,
    Binary,
}

fn transport(data_type: &str) -> Option<Transport> {
    let (base, label) = match data_type.split_once('.') {
        Some((base, label)) => (base, Some(label)),
        None => (data_type, None),
    };
    if let Some(label) = label
        && (label.is_empty()
            || label.len() > MAX_TYPE_LEN
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    {
        return None;
    }
    match base {
        "String" => Some(Transport::String),
        "Number" => Some(Transport::Number),
        "Binary" => Some(Transport::Binary),
        _ => None,
    }
}

/// A decimal number as SQS takes one (sign, digits, point, exponent).
fn is_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (t, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        (!whole.is_empty() || !fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.len() <= 4 && digits(e)
    });
    mantissa_ok && exponent_ok && text.len() <= 100
}

/// Whether `text` holds only characters SQS allows in a message: tab, line
/// feed, carriage return, and U+0020 on (less the surrogates and U+FFFE,
/// U+FFFF).
pub fn valid_text(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    })
}

/// The Nimbus attributes for SQS ones, refusing what SQS refuses. Names are
/// checked by the store's own rule ([`nimbus_store::queue::check_message`]).
pub fn to_stored(
    attributes: &BTreeMap<String, AttributeValue>,
) -> Result<BTreeMap<String, String>, SqsError> {
    let mut stored = BTreeMap::new();
    let mut types = Vec::new();
    for (name, value) in attributes {
        let lower = name.to_ascii_lowercase();
        if name == TYPES_ATTRIBUTE || lower.starts_with("aws.") || lower.starts_with("amazon.") {
            return Err(SqsError::invalid(format!(
                "the message attribute name `{name}` is reserved"
            )));
        }
        if value.string_list_values.is_some() || value.binary_list_values.is_some() {
            return Err(SqsError::invalid(
                "StringListValues and BinaryListValues are not supported",
            ));
        }
        let Some(transport) = transport(&value.data_type) else {
            return Err(SqsError::invalid(format!(
                "the message attribute `{name}` has an invalid DataType: give String, Number or Binary, optionally with a `.label`"
            )));
        };
        let text = match (transport, &value.string_value, &value.binary_value) {
            (Transport::String | Transport::Number, Some(text), None) => {
                if transport == Transport::Number && !is_number(text) {
                    return Err(SqsError::invalid(format!(
                        "the message attribute `{name}` of type Number is not a number"
                    )));
                }
                if !valid_text(text) {
                    return Err(SqsError::new(
                        crate::error::SqsErrorKind::InvalidMessageContents,
                        format!(
                            "the message attribute `{name}` holds characters SQS does not allow"
                        ),
                    ));
                }
                text.clone()
            }
            (Transport::Binary, None, Some(encoded)) => {
                BASE64.decode(encoded).map_err(|_| {
                    SqsError::invalid(format!(
                        "the message attribute `{name}` has a BinaryValue that is not base64"
                    ))
                })?;
                encoded.clone()
            }
            _ => {
                return Err(SqsError::invalid(format!(
                    "the message attribute `{name}` must have a StringValue (String, Number) or a BinaryValue (Binary), not both"
                )));
            }
        };
        if text.is_empty() {
            return Err(SqsError::invalid(format!(
                "the message attribute `{name}` has an empty value"
            )));
        }
        if value.data_type != "String" {
            types.push(format!("{name}={}", value.data_type));
        }
        stored.insert(name.clone(), text);
    }
    if !types.is_empty() {
        stored.insert(TYPES_ATTRIBUTE.to_owned(), types.join(","));
    }
    Ok(stored)
}

/// The SQS attributes of a stored message: every attribute but
/// `traceparent` and [`TYPES_ATTRIBUTE`], typed as the send recorded (a
/// `String` when it did not, as for messages sent through `/v1` or by a
/// function).
pub fn from_stored(stored: &BTreeMap<String, String>) -> BTreeMap<String, AttributeValue> {
    let types: BTreeMap<&str, &str> = stored
        .get(TYPES_ATTRIBUTE)
        .map(|t| {
            t.split(',')
                .filter_map(|entry| entry.split_once('='))
                .filter(|(_, ty)| transport(ty).is_some())
                .collect()
        })
        .unwrap_or_default();
    stored
        .iter()
        .filter(|(name, _)| *name != TRACEPARENT_ATTRIBUTE && *name != TYPES_ATTRIBUTE)
        .map(|(name, value)| {
            let mut data_type = types.get(name.as_str()).copied().unwrap_or("String");
            // A Binary value that is not base64 (changed by hand) is shown
            // as the string it is.
            if transport(data_type) == Some(Transport::Binary) && BASE64.decode(value).is_err() {
                data_type = "String";
            }
            let binary = transport(data_type) == Some(Transport::Binary);
            (
                name.clone(),
                AttributeValue {
                    data_type: data_type.to_owned(),
                    string_value: (!binary).then(|| value.clone()),
                    binary_value: binary.then(|| value.clone()),
                    string_list_values: None,
                    binary_list_values: None,
                },
            )
        })
        .collect()
}

/// Lowercase hex of the MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// `MD5OfMessageAttributes` as SQS computes it: over the attributes sorted
/// by name, each as its name, its type and its value, every part preceded
/// by its length (4 bytes, big-endian), with one byte between type and
/// value saying how the value is carried (1 for text, 2 for bytes).
/// `None` when there are no attributes.
pub fn md5_of_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Option<String> {
    fn part(md5: &mut Md5, bytes: &[u8]) {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    }
    if attributes.is_empty() {
        return None;
    }
    let mut md5 = Md5::new();
    for (name, value) in attributes {
        part(&mut md5, name.as_bytes());
        part(&mut md5, value.data_type.as_bytes());
        match (&value.binary_value, &value.string_value) {
            (Some(encoded), _) => {
                md5.update([2u8]);
                part(&mut md5, &BASE64.decode(encoded).unwrap_or_default());
            }
            (None, text) => {
                md5.update([1u8]);
                part(&mut md5, text.as_deref().unwrap_or("").as_bytes());
            }
        }
    }
    Some(hex(&md5.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(data_type: &str, string: Option<&str>, binary: Option<&str>) -> AttributeValue {
        AttributeValue {
            data_type: data_type.to_owned(),
            string_value: string.map(str::to_owned),
            binary_value: binary.map(str::to_owned),
            string_list_values: None,
            binary_list_values: None,
        }
    }

    #[test]
    fn the_md5_of_a_body_is_lowercase_hex() {
        // RFC 1321's test suite.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn the_md5_of_attributes_follows_the_sqs_encoding() {
        // Built by hand from the rule: name, type, transport byte, value,
        // each length-prefixed (big-endian u32), attributes by name.
        fn push(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut expected = Vec::new();
        push(&mut expected, b"a");
        push(&mut expected, b"Binary");
        expected.push(2);
        push(&mut expected, &[0, 1, 2]);
        push(&mut expected, b"b");
        push(&mut expected, b"Number");
        expected.push(1);
        push(&mut expected, b"42");
        let attributes = BTreeMap::from([
            ("b".to_owned(), typed("Number", Some("42"), None)),
            ("a".to_owned(), typed("Binary", None, Some("AAEC"))),
        ]);
        assert_eq!(md5_of_attributes(&attributes), Some(md5_hex(&expected)));
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }

    #[test]
    fn typed_attributes_round_trip_through_plain_strings() {
        let sent = BTreeMap::from([
            ("city".to_owned(), typed("String", Some("Zürich"), None)),
            (
                "count".to_owned(),
                typed("Number.int", Some("-12.5e3"), None),
            ),
            ("blob".to_owned(), typed("Binary", None, Some("AP8="))),
        ]);
        let stored = to_stored(&sent).unwrap();
        assert_eq!(stored["city"], "Zürich");
        assert_eq!(stored["count"], "-12.5e3");
        assert_eq!(stored["blob"], "AP8=");
        assert_eq!(stored[TYPES_ATTRIBUTE], "blob=Binary,count=Number.int");
        let mut with_trace = stored.clone();
        with_trace.insert(TRACEPARENT_ATTRIBUTE.to_owned(), "00-abc-def-01".to_owned());
        let received = from_stored(&with_trace);
        assert_eq!(received, sent);
        assert_eq!(md5_of_attributes(&received), md5_of_attributes(&sent));
        // All plain strings: stored exactly as sent, nothing added.
        let plain = BTreeMap::from([("k".to_owned(), typed("String", Some("v"), None))]);
        assert_eq!(
            to_stored(&plain).unwrap(),
            BTreeMap::from([("k".to_owned(), "v".to_owned())])
        );
    }

    #[test]
    fn what_sqs_refuses_is_refused() {
        let one = |name: &str, value: AttributeValue| {
            to_stored(&BTreeMap::from([(name.to_owned(), value)]))
        };
        assert!(one("n", typed("Number", Some("12x"), None)).is_err());
        assert!(one("n", typed("Integer", Some("1"), None)).is_err());
        assert!(one("n", typed("String.", Some("1"), None)).is_err());
        assert!(one("n", typed("String", None, Some("AA=="))).is_err());
        assert!(one("n", typed("Binary", None, Some("not base64!"))).is_err());
        assert!(one("n", typed("String", Some(""), None)).is_err());
        assert!(one("n", typed("String", Some("a\u{1}b"), None)).is_err());
        assert!(one(TYPES_ATTRIBUTE, typed("String", Some("x"), None)).is_err());
        assert!(one("AWS.trace", typed("String", Some("x"), None)).is_err());
        for number in ["0", "-1", "+2.5", ".5", "5.", "1e10", "-3.2E-7"] {
            assert!(is_number(number), "{number}");
        }
        for not in ["", "-", ".", "1e", "e5", "0x10", "1 2", "NaN"] {
            assert!(!is_number(not), "{not}");
        }
    }
}

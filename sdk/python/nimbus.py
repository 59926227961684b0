"""Nimbus services for Python functions, as far as the function's grants allow.

Built into the component by componentize-py from the `nimbus:function` WIT
(`wit_world` is the module it generates for the world being built), so this
module works in an event function (world `nimbus:function/event-function`)
and in an HTTP function whose world also includes `nimbus:function/imports`:

    import nimbus

    nimbus.info("hello")
    nimbus.send_message("results", b"done")
    nimbus.put_item("orders", {"id": "o-1", "status": "paid"})
    nimbus.get_item("orders", "o-1").document["status"]

A call the function's grants do not allow raises `AccessDenied` (naming the
grant needed); every failure of a host call is a `NimbusError`.
"""

import json
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, TypeVar, Union

from componentize_py_types import Err
from wit_world.imports import buckets as _buckets
from wit_world.imports import functions as _functions
from wit_world.imports import log as _log
from wit_world.imports import queue as _queue
from wit_world.imports import secrets as _secrets
from wit_world.imports import tables as _tables

ObjectInfo = _buckets.ObjectInfo
"""What an object is: `key`, `size`, `etag` (hex SHA-256), `content_type`."""


class NimbusError(Exception):
    """A host call failed; the message says why."""


class AccessDenied(NimbusError):
    """The function's grants do not allow the call; names the grant needed."""


class NotFound(NimbusError):
    """The named resource does not exist."""


class Invalid(NimbusError):
    """The request was refused as malformed or over a limit."""


class Unavailable(NimbusError):
    """The service is unavailable; retrying later may succeed."""


class Failed(NimbusError):
    """An invoked function failed; names its invocation id."""


class Conflict(NimbusError):
    """A conditional write found the item in another state."""


# componentize-py names the cases of the WIT variant `error` this way.
_ERRORS = {
    "Error_AccessDenied": AccessDenied,
    "Error_NotFound": NotFound,
    "Error_Invalid": Invalid,
    "Error_Unavailable": Unavailable,
    "Error_Failed": Failed,
    "Error_Conflict": Conflict,
}

_T = TypeVar("_T")


def _call(function: Callable[..., _T], *args: Any) -> _T:
    """Calls a host function, turning its WIT `error` into a `NimbusError`."""
    try:
        return function(*args)
    except Err as e:
        error = e.value
        kind = _ERRORS.get(type(error).__name__, NimbusError)
        raise kind(getattr(error, "value", repr(error))) from None


# Queues (`allow = ["queue:NAME:send"]`).


def send_message(queue: str, body: Union[bytes, str]) -> str:
    """Sends a message; returns its id once it is durable."""
    if isinstance(body, str):
        body = body.encode()
    return _call(_queue.send, queue, body)


# Tables (`allow = ["table:NAME:read", "table:NAME:write"]`).


@dataclass
class Item:
    """A table item: its keys, its JSON document (parsed) and its version."""

    partition: str
    sort: Optional[str]
    document: Any
    version: int


def _item(item: _tables.Item) -> Item:
    return Item(item.partition, item.sort, json.loads(item.document), item.version)


def put_item(
    table: str,
    document: Any,
    if_absent: bool = False,
    if_version: Optional[int] = None,
) -> int:
    """Writes a JSON object (a dict, or its JSON text); its keys are the
    table's key attributes. Returns the new version once it is durable. With
    `if_absent` or `if_version`, a false condition raises `Conflict`."""
    if not isinstance(document, str):
        document = json.dumps(document)
    condition: _tables.PutCondition
    if if_absent:
        condition = _tables.PutCondition_IfAbsent()
    elif if_version is not None:
        condition = _tables.PutCondition_IfVersion(if_version)
    else:
        condition = _tables.PutCondition_Always()
    return _call(_tables.put, table, document, condition)


def get_item(table: str, partition: str, sort: Optional[str] = None) -> Optional[Item]:
    """The item with these keys, or None."""
    item = _call(_tables.get, table, partition, sort)
    return None if item is None else _item(item)


def delete_item(table: str, partition: str, sort: Optional[str] = None) -> bool:
    """Deletes the item; True if there was one."""
    return _call(_tables.delete, table, partition, sort)


def query_items(
    table: str,
    partition: str,
    sort_prefix: Optional[str] = None,
    after: Optional[str] = None,
    limit: int = 100,
) -> List[Item]:
    """Up to `limit` items of `partition` in sort-key order, only sort keys
    starting with `sort_prefix` if given, after the sort key `after` if
    given (pass the last one seen to page)."""
    items = _call(_tables.query, table, partition, sort_prefix, after, limit)
    return [_item(item) for item in items]


# Buckets (`allow = ["bucket:NAME:read"]`, `"bucket:NAME/PREFIX:write"`).


def get_object(bucket: str, key: str) -> bytes:
    """The object's bytes; raises `NotFound` if there is none."""
    return _call(_buckets.get, bucket, key)


def put_object(
    bucket: str,
    key: str,
    body: Union[bytes, str],
    content_type: Optional[str] = None,
) -> ObjectInfo:
    """Stores an object; returns once it (and its events) are durable."""
    if isinstance(body, str):
        body = body.encode()
    return _call(_buckets.put, bucket, key, body, content_type)


def delete_object(bucket: str, key: str) -> bool:
    """Removes an object; False if there was none."""
    return _call(_buckets.delete, bucket, key)


def list_objects(
    bucket: str, prefix: str = "", start_after: Optional[str] = None
) -> List[ObjectInfo]:
    """Up to 1000 objects whose keys start with `prefix`, after
    `start_after`, in key order."""
    return _call(_buckets.list_objects, bucket, prefix, start_after)


# Secrets (`allow = ["secret:NAME:read"]`), read at each call.


def get_secret(name: str) -> bytes:
    """The secret's value as stored; raises `NotFound` if it is not set."""
    return _call(_secrets.get, name)


def get_secret_text(name: str) -> str:
    """`get_secret` for a text value; raises `Invalid` if it is not UTF-8."""
    try:
        return get_secret(name).decode()
    except UnicodeDecodeError:
        raise Invalid(f"secret `{name}` is not UTF-8 text") from None


# The app's other event functions (`allow = ["function:NAME:invoke"]`).


def invoke(function: str, data: Union[bytes, str]) -> None:
    """Runs `function` with one event carrying `data` and waits for it."""
    if isinstance(data, str):
        data = data.encode()
    _call(_functions.invoke, function, data)


def invoke_async(function: str, data: Union[bytes, str]) -> str:
    """Queues one event for `function`; its id comes back once durable."""
    if isinstance(data, str):
        data = data.encode()
    return _call(_functions.invoke_async, function, data)


# Log lines, tagged by the host with the function and invocation id.


def debug(message: str) -> None:
    _log.log(_log.Level.DEBUG, message)


def info(message: str) -> None:
    _log.log(_log.Level.INFO, message)


def warn(message: str) -> None:
    _log.log(_log.Level.WARN, message)


def error(message: str) -> None:
    _log.log(_log.Level.ERROR, message)

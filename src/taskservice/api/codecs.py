"""The wire codecs of our server: bad bytes are the client's error, and JSON shows every field.

connect-python keeps its codecs in a module-level registry (per-handler codecs are on its roadmap);
we replace its two entries with stricter versions of the same codecs:
- a body that does not decode is `invalid_argument`, naming the message type, not `unknown`;
- unknown JSON fields are ignored (as connect-go does), but where a message goes the JSON must be an
  object (json_format, told to ignore unknown fields, read `"payload": "x"` as an empty Payload);
- an enum name the schema does not have is `invalid_argument` naming the field (json_format, told to
  ignore unknown fields, drops it, and `"status": "NOPE"` in a ListTasks filter listed every task);
- a string holding NUL is `invalid_argument` naming the field, for every field of every request:
  PostgreSQL text cannot hold NUL, and such a string reached the database as a 500 `internal`;
- JSON output includes fields at their default value (`"status": "QUEUED"`, `"retries": 0`), which
  proto3 JSON allows and which makes curl output and dashboards simpler.
"""

from __future__ import annotations

import json
from typing import Any

from connectrpc import _codec
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.message import DecodeError, Message


def _bad_body(message: Message, error: Exception) -> ConnectError:
    detail = str(error).rstrip(".") or type(error).__name__
    return ConnectError(
        Code.INVALID_ARGUMENT, f"request body: not a valid {message.DESCRIPTOR.name}: {detail}"
    )


class _UnknownEnumName(ValueError):
    """A JSON enum value by a name its enum does not have; the message is `field: rule`."""


def _check_enum_names(enum: EnumDescriptor, item: Any, where: str) -> None:
    names = enum.values_by_name
    for value in item if isinstance(item, list) else [item]:
        if isinstance(value, str) and value not in names:
            known = ", ".join(names)
            raise _UnknownEnumName(f"{where}: unknown {enum.name} name {value!r}; known: {known}")


def _require_objects(value: Any, descriptor: Descriptor, path: str = "") -> None:
    """Raise ValueError unless `value`, and every message field in it, is a JSON object, and every
    enum name in it is one its enum has."""
    if not isinstance(value, dict):
        raise ValueError(f"{path or 'the body'} must be a JSON object, not {type(value).__name__}")
    fields = {name: f for f in descriptor.fields for name in (f.name, f.json_name)}
    for key, item in value.items():
        field = fields.get(key)
        if field is not None and field.enum_type is not None:
            _check_enum_names(field.enum_type, item, f"{path}.{field.name}" if path else field.name)
        kind = field.message_type if field is not None else None
        if kind is None or item is None or kind.GetOptions().map_entry:
            continue  # scalars and nulls; json_format checks maps
        if kind.file.package == "google.protobuf":
            continue  # well-known types have JSON forms of their own
        where = f"{path}.{key}" if path else key
        if isinstance(item, list) and field is not None and field.is_repeated:
            for index, element in enumerate(item):
                _require_objects(element, kind, f"{where}[{index}]")
        else:
            _require_objects(item, kind, where)


def _nul_string(message: Message, path: str = "") -> str | None:
    """The path of the first string field (in any depth) of `message` that holds NUL, or None."""
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            nested = kind.fields_by_name["value"].message_type is not None
            for key, item in value.items():
                entry = f"{where}[{key!r}]"
                if isinstance(key, str) and "\x00" in key:
                    return entry
                found = _nul_string(item, entry) if nested else _nul_in(item, entry)
                if found:
                    return found
            continue
        items = enumerate(value) if field.is_repeated else [(None, value)]
        for index, item in items:
            at = where if index is None else f"{where}[{index}]"
            found = _nul_string(item, at) if kind is not None else _nul_in(item, at)
            if found:
                return found
    return None


def _nul_in(value: object, where: str) -> str | None:
    return where if isinstance(value, str) and "\x00" in value else None


def _refuse_nul(message: Message, data: bytes | bytearray, marker: bytes) -> None:
    """Refuse a message with NUL in a string; only looked for when the bytes could hold one."""
    if marker in data:
        where = _nul_string(message)
        if where is not None:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"{where}: must not contain NUL characters (PostgreSQL text cannot hold them)",
            )


class StrictProtoBinaryCodec(_codec.ProtoBinaryCodec[Any]):
    def decode(self, data: bytes | bytearray, message: Any) -> Any:
        try:
            decoded = super().decode(data, message)
        except (DecodeError, ValueError, TypeError) as error:
            raise _bad_body(message, error) from None
        _refuse_nul(decoded, data, b"\x00")  # NUL in a string is a 0 byte on the wire
        return decoded


class StrictProtoJSONCodec(_codec.ProtoJSONCodec[Any]):
    def encode(self, message: Message) -> bytes:
        text: str = json_format.MessageToJson(message, always_print_fields_with_no_presence=True)
        return text.encode()

    def decode(self, data: bytes | bytearray, message: Any) -> Any:
        try:
            # Unknown fields are skipped, as connect-go does, so newer clients keep working.
            parsed = json_format.Parse(bytes(data), message, ignore_unknown_fields=True)
            _require_objects(json.loads(bytes(data)), message.DESCRIPTOR)
            _refuse_nul(parsed, data, b"\\u0000")  # JSON strings hold NUL only as this escape
            return parsed
        except _UnknownEnumName as error:
            raise ConnectError(Code.INVALID_ARGUMENT, str(error)) from None
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
            raise _bad_body(message, error) from None


def install() -> None:
    """Make the server use the strict codecs (idempotent)."""
    binary, json_codec = StrictProtoBinaryCodec(), StrictProtoJSONCodec()
    _codec._codecs[_codec.CODEC_NAME_PROTO] = binary
    _codec._codecs[_codec.CODEC_NAME_JSON] = json_codec
    _codec._codecs[_codec.CODEC_NAME_JSON_CHARSET_UTF8] = json_codec

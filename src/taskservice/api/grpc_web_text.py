"""gRPC-Web text (application/grpc-web-text): base64 on the wire, binary gRPC-Web inside.

connect-python serves binary gRPC-Web; browsers' grpc-web clients in text mode (the default of
grpc-web's JS client, for streaming over XHR) send and read the same frames in base64. This ASGI
middleware decodes the request and encodes the response, so everything behind it (the limits, the
access check, the services) sees binary gRPC-Web.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEXT = b"application/grpc-web-text"
BINARY = b"application/grpc-web"


def _content_type(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).lower()
    return b""


class GrpcWebText:
    """Translates application/grpc-web-text[+proto] requests to and from binary gRPC-Web."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = _content_type(scope) if scope["type"] == "http" else b""
        if not content_type.startswith(TEXT):
            await self.app(scope, receive, send)
            return
        codec = content_type[len(TEXT) :] or b"+proto"
        headers = [
            (name, BINARY + codec if name == b"content-type" else value)
            for name, value in scope["headers"]
            if name != b"content-length"  # the body shrinks by a quarter
        ]
        decoder, encoder = _Decoder(receive), _Encoder(send)
        await self.app({**scope, "headers": headers}, decoder.receive, encoder.send)


class _Decoder:
    """The request body, base64 decoded as it arrives (padded segments may follow each other)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._pending = b""

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        text = self._pending + b"".join(bytes(message.get("body", b"")).split())
        more = message.get("more_body", False)
        usable = len(text) - len(text) % 4 if more else len(text)
        body, self._pending = _decode(text[:usable]), text[usable:]
        return {**message, "body": body}


def _decode(text: bytes) -> bytes:
    """Base64 in groups of four, where a padded group may end one segment and another begin."""
    out, start = bytearray(), 0
    try:
        while (pad := text.find(b"=", start)) != -1:
            end = pad - pad % 4 + 4  # the end of the group that holds the padding
            out += b64decode(text[start:end], validate=True)
            start = end
        out += b64decode(text[start:], validate=True)
    except (binascii.Error, ValueError):
        raise ConnectError(
            Code.INVALID_ARGUMENT, "the application/grpc-web-text request body is not valid base64"
        ) from None
    return bytes(out)


class _Encoder:
    """The response, content type renamed and body base64 encoded as one unpadded-until-the-end text."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, TEXT + bytes(value)[len(BINARY) :] if name == b"content-type" else value)
                for name, value in message.get("headers", ())
                if name != b"content-length"
            ]
            await self._send({**message, "headers": headers})
            return
        if message["type"] == "http.response.body":
            data = self._pending + bytes(message.get("body", b""))
            more = message.get("more_body", False)
            usable = len(data) - len(data) % 3 if more else len(data)
            self._pending = data[usable:]
            await self._send({**message, "body": b64encode(data[:usable])})
            return
        await self._send(message)

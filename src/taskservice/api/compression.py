"""gzip for the RPC servers, inflating at most a bounded size: a small bomb cannot take the memory.

connect-python inflates request bodies (unary) and messages (streams) with `gzip.decompress`, which
knows no limit and raises errors it reports as `unknown`; it takes its compressions from the ASGI
application, so ours replaces its gzip there.
"""

from __future__ import annotations

import gzip
import zlib

from connectrpc.code import Code
from connectrpc.errors import ConnectError

CHUNK = 64 * 1024


class BoundedGzip:
    """The `gzip` compression: responses as usual; requests inflated to at most `max_bytes`."""

    def __init__(self, max_bytes: int, level: int = 6) -> None:
        self.max_bytes, self.level = max_bytes, level

    def name(self) -> str:
        return "gzip"

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return gzip.compress(data, compresslevel=self.level)

    def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
        """The inflated data; `resource_exhausted` past max_bytes, `invalid_argument` if not gzip."""
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        out = bytearray()
        pending = memoryview(bytes(data))
        try:
            while pending:
                # Never more than the limit (plus one byte, to notice going over) at a time.
                out += inflater.decompress(pending, self.max_bytes + 1 - len(out))
                if len(out) > self.max_bytes:
                    raise ConnectError(
                        Code.RESOURCE_EXHAUSTED,
                        f"the request inflates to more than {self.max_bytes} bytes (MAX_DECOMPRESSED_BYTES)",
                    )
                pending = memoryview(inflater.unconsumed_tail)
                if inflater.eof:
                    break
            if not inflater.eof:
                raise ConnectError(Code.INVALID_ARGUMENT, "the gzip data of the request is truncated")
        except zlib.error as error:
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"the request says gzip but is not valid gzip data: {error}"
            ) from None
        return bytes(out)

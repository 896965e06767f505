"""JSON read within bounds, for files a visitor may have written (a run's config.json inside an uploaded zip, the
trainer state in a checkpoint's header): the size is checked before a byte is read, and every array and object is
counted while it is parsed, so a refusal happens before the oversized part is built. A 60 MB config of 10,000,000
custom points is refused in milliseconds with no memory to speak of; `json.loads` took 16 s and 1 GB to read it.

The parse is the standard library's own (json.decoder's JSONArray and JSONObject, driven by its pure-Python scanner
so that they can be wrapped): only a counter per container is added.
"""

import json
from json.decoder import JSONArray, JSONObject
from json.scanner import py_make_scanner
from pathlib import Path
from typing import Any

from diffusion.config import MAX_CUSTOM_POINTS

MAX_CONFIG_BYTES = 1_000_000      # a run config with MAX_CUSTOM_POINTS points and labels takes ~300 kB (indent 2)
MAX_ITEMS = MAX_CUSTOM_POINTS     # items of one array or object: the longest list a run config holds
MAX_DEPTH = 16                    # nesting: a run config is 4 deep (config, data, points, a point)


class _BoundedDecoder(json.JSONDecoder):
    """A JSONDecoder that raises ValueError as soon as a container passes max_items or max_depth."""

    def __init__(self, what: str, max_items: int, max_depth: int):
        super().__init__()
        self.what, self.max_items, self.max_depth, self.depth = what, max_items, max_depth, 0
        self.parse_array = lambda s_and_end, scan: JSONArray(s_and_end, self._counted(scan, "an array"))
        self.parse_object = lambda s_and_end, strict, scan, hook, pairs_hook, memo=None: JSONObject(
            s_and_end, strict, self._counted(scan, "an object"), hook, pairs_hook, memo)
        self.scan_once = py_make_scanner(self)

    def _counted(self, scan, kind: str):
        """scan_once for the values of one container: counts them and tracks the nesting while each is read."""
        count = 0
        if self.depth >= self.max_depth:
            raise ValueError(f"{self.what} is nested more than {self.max_depth} levels deep; allowed: at most "
                             f"{self.max_depth}")

        def value(s: str, end: int):
            nonlocal count
            count += 1
            if count > self.max_items:
                raise ValueError(f"{self.what} holds {kind} of more than {self.max_items:,} items; allowed: at most "
                                 f"{self.max_items:,}")
            self.depth += 1
            try:
                return scan(s, end)
            finally:
                self.depth -= 1
        return value


def loads(text: str | bytes, what: str, max_bytes: int = MAX_CONFIG_BYTES, max_items: int = MAX_ITEMS,
          max_depth: int = MAX_DEPTH) -> Any:
    """json.loads within bounds: ValueError naming `what`, the size or count found and the limit, when a bound is
    passed; json.JSONDecodeError or UnicodeDecodeError (ValueErrors too) when the text is not JSON."""
    if len(text) > max_bytes:
        raise ValueError(f"{what} has {len(text):,} bytes; allowed: at most {max_bytes:,}")
    return _BoundedDecoder(what, max_items, max_depth).decode(text.decode() if isinstance(text, bytes) else text)


def read(path: Path, what: str, max_bytes: int = MAX_CONFIG_BYTES, **bounds: int) -> Any:
    """The JSON file at path within bounds: its size is read from the file system, and an oversized file is refused
    before anything is read."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{what} has {size:,} bytes; allowed: at most {max_bytes:,}")
    with open(path, "rb") as f:
        return loads(f.read(max_bytes + 1), what, max_bytes, **bounds)

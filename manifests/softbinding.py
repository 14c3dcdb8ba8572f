"""C2PA soft bindings: the official algorithm list, and binding values in canonical form.

A `c2pa.soft-binding` assertion names an algorithm (`alg`, e.g. `com.adobe.trustmark.Q`) and
carries one value per block. The Soft Binding Resolution API looks values up exactly, so they
are kept as canonical base64 (padding, no whitespace) whatever form the manifest or the
client used."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# The list's own pattern for `alg` (softbinding-algorithm-list.schema.json).
ALG_PATTERN = re.compile(r"^[A-Za-z]{2,63}(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$")
MAX_VALUE_BYTES = 65536
MAX_LIST_BYTES = 4 * 1024 * 1024

AlgStatus = Literal["listed", "deprecated", "unknown", "unchecked"]


class SoftBindingError(ValueError):
    """A binding value or algorithm list that cannot be used."""


def canonical_value(value: Any) -> str:
    """Canonical base64 of a binding value given as base64 text (standard or URL-safe, padding
    optional) or as a list of byte values (how CBOR bytes come out of the SDK's JSON)."""
    if isinstance(value, list) and value and all(isinstance(x, int) and 0 <= x < 256 for x in value):
        raw = bytes(value)
    elif isinstance(value, str) and value.strip():
        text = "".join(value.split())
        text = text.replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SoftBindingError("the value is not base64") from exc
    else:
        raise SoftBindingError("the value is empty or not base64 text")
    if not raw or len(raw) > MAX_VALUE_BYTES:
        raise SoftBindingError(f"the value must decode to 1..{MAX_VALUE_BYTES} bytes")
    return base64.b64encode(raw).decode()


def valid_alg(alg: str) -> bool:
    return len(alg) <= 255 and ALG_PATTERN.match(alg) is not None


@dataclass(frozen=True)
class AlgorithmEntry:
    alg: str
    type: Literal["watermark", "fingerprint"]
    deprecated: bool
    identifier: int | None


@dataclass(frozen=True)
class AlgorithmList:
    """The C2PA soft-binding algorithm list (github.com/c2pa-org/softbinding-algorithm-list),
    as the operator downloaded it. Empty: no list configured, every alg is `unchecked`."""

    entries: tuple[AlgorithmEntry, ...] = ()
    source: str | None = None

    @classmethod
    def load(cls, path: Path) -> AlgorithmList:
        try:
            data = Path(path).read_bytes()
            if len(data) > MAX_LIST_BYTES:
                raise SoftBindingError(f"{path}: larger than {MAX_LIST_BYTES} bytes")
            raw = json.loads(data)
        except (OSError, ValueError) as exc:
            raise SoftBindingError(f"soft-binding algorithm list {path}: {exc}") from exc
        if not isinstance(raw, list):
            raise SoftBindingError(f"soft-binding algorithm list {path}: not a JSON array")
        entries = []
        for i, item in enumerate(raw):
            if not (isinstance(item, dict) and isinstance(item.get("alg"), str)
                    and item.get("type") in ("watermark", "fingerprint")):
                raise SoftBindingError(f"soft-binding algorithm list {path}: entry {i} has no alg/type")
            entries.append(AlgorithmEntry(item["alg"], item["type"], bool(item.get("deprecated", False)),
                                          item.get("identifier") if isinstance(item.get("identifier"), int) else None))
        return cls(tuple(entries), str(path))

    def status(self, alg: str) -> AlgStatus:
        if not self.entries:
            return "unchecked"
        entry = next((e for e in self.entries if e.alg == alg), None)
        if entry is None:
            return "unknown"
        return "deprecated" if entry.deprecated else "listed"

    def watermarks(self) -> list[str]:
        return [e.alg for e in self.entries if e.type == "watermark" and not e.deprecated]

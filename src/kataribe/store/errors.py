"""Errors the store raises: a missing row, a value the schema refuses, an asset it will not keep."""

from __future__ import annotations

from kataribe.errors import InvalidRequest, KataribeError


class NotFound(KataribeError):
    """A row or file the caller named by id does not exist (any more)."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, kind: str, ident: object, *, hint: str | None = None) -> None:
        super().__init__(
            f"{kind.capitalize()} {ident!s} does not exist. "
            + (hint or f"It may have been deleted; list the {kind}s again and pick one that exists."),
            param=f"{kind.replace(' ', '_')}_id",
            code="not_found",
        )
        self.kind = kind
        self.ident = ident


class InvalidValue(InvalidRequest):
    """A field has a value the store cannot keep (wrong type, unknown choice, too large, bad text)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, param=field, code="invalid_value")
        self.field = field


class AssetTooLarge(InvalidRequest):
    status_code = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The file is {size:,} bytes; the limit is {limit:,}. "
            "Shrink or recompress it (for images: a smaller size or WebP), then upload it again.",
            param="file",
            code="asset_too_large",
        )
        self.size = size
        self.limit = limit

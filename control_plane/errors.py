"""API errors: every failure a client can cause carries its HTTP status, a stable code and the field.

Handlers raise `ApiError`; the error middleware (`control_plane.api.middleware`) renders it as
``{"error": {"code", "message", "field"}}`` with the status. Nothing else reaches the client: an
unexpected exception becomes a 500 with a generic message and the stack trace goes to the log.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses: `status` (HTTP), `code` (stable, snake_case), `field` (or None)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def invalid(field: str, message: str, code: str = "invalid_field") -> ApiError:
    """422: the body parsed as JSON but a field has the wrong type or value."""
    return ApiError(422, code, message, field)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident!r} does not exist")


def conflict(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(409, code, message, field)

"""The error that the model server returns as a Seldon status object."""

from __future__ import annotations

from typing import Any

from seldon_core.flask_utils import SeldonMicroserviceException


class RequestError(SeldonMicroserviceException):
    """A request that the server rejects, with the HTTP status code and the problem.

    seldon-core 1.19 serializes its own ``SeldonMicroserviceException`` with ``code`` -1
    and ``status`` 1. This subclass fills in the HTTP code and ``FAILURE`` instead, as the
    Seldon protocol's ``Status`` message describes.
    """

    def __init__(self, message: str, status_code: int = 400, reason: str = "INVALID_PAYLOAD") -> None:
        super().__init__(message, status_code=status_code, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": {
                "code": self.status_code,
                "info": self.message,
                "reason": self.reason,
                "status": "FAILURE",
            }
        }

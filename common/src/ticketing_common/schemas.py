"""Building blocks of request bodies shared by the services."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class RequestBody(BaseModel):
    """Base of a JSON request body: strict types (a number is not a string), unknown keys
    ignored. Fields with their own parsing (prices) validate on their own terms."""

    model_config = ConfigDict(extra="ignore", strict=True)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# A string field trimmed of surrounding white space before its own checks.
Trimmed = BeforeValidator(_strip)

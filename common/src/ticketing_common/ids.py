"""Record ids: MongoDB ObjectIds written as 24 lowercase hex characters."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

OBJECT_ID_RE = re.compile(r"^[0-9a-f]{24}$")


def is_object_id(value: object) -> bool:
    return isinstance(value, str) and OBJECT_ID_RE.match(value) is not None


def _object_id(value: Any) -> str:
    if not is_object_id(value):
        raise ValueError("Must be a valid id")
    return str(value)


ObjectIdStr = Annotated[str, BeforeValidator(_object_id)]

"""Record ids: MongoDB ObjectIds written as 24 lowercase hex characters (SPEC §3)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from ticketing_common.mongo import is_object_id


def _object_id(value: Any) -> str:
    if not is_object_id(value):
        raise ValueError("Must be a valid id")
    return str(value)


ObjectIdStr = Annotated[str, BeforeValidator(_object_id)]

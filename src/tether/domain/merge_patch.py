"""JSON Merge Patch (RFC 7386, section 2's MergePatch pseudocode)."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` and return the result; inputs are not mutated.

    A ``null`` member in the patch removes that member; a non-object patch replaces the
    target whole (RFC 7386 §2).
    """
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result

"""Constructor argument checks shared by the model parts: one wording for every size error."""

from __future__ import annotations


def check_sizes(owner: str, sizes: dict[str, int]) -> None:
    """Raise ``ValueError("<owner>: <name> must be >= 1, got <value>")`` for the first size below 1."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{owner}: {name} must be >= 1, got {value}")


def check_heads(owner: str, dim_name: str, dim: int, heads_name: str, heads: int, *,
                multiple_of_4: bool = False) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``dim`` splits into ``heads`` attention heads (and, with
    ``multiple_of_4``, into the four sine position-encoding parts)."""
    if dim % heads != 0 or (multiple_of_4 and dim % 4 != 0):
        four = "4 and of " if multiple_of_4 else ""
        raise ValueError(f"{owner}: {dim_name} ({dim}) must be a multiple of {four}{heads_name} ({heads})")

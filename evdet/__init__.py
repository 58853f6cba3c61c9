"""evdet: object detection with event cameras.

Layers (imports go downward only)::

    io -> preprocessing -> data -> ops -> models -> evaluation -> training -> viz / export

See ``docs/`` for the user guide and ``../shared/SPEC.md`` for formats and semantics.
"""

__version__ = "0.1.0"

"""A run's complete configuration as a YAML file: ``ROOT/config.yaml``, written by every training run.

The file holds the dataset folder and the three option dataclasses, every field with its value (defaults
included), as plain YAML::

    # evdet-train run configuration: `evdet-train --config this.yaml --root-dir NEW_RUN` repeats the run
    dataset_dir: data/gen1
    model: {backbone: Vanilla, head: anchor, vanilla: {base: 16, cout: 256}, ...}
    data: {num_tbins: 12, batch_size: 4, ...}
    train: {lr: 0.002, ...}

``evdet-train --config FILE [flags]`` starts from such a file (the flags override it) and
``--print-config`` prints what a command resolves to, in the same format. Values derived from the data
(channels, classes, sizes) are not options and are not in the file; options left to the data (``None``,
e.g. ``data.delta_t``) stay ``null``. Reading is strict: an unknown section or option is an error naming
the file and the valid names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evdet.data.config import DataConfig
from evdet.inference.config_dict import config_from_dict, config_to_dict
from evdet.inference.model_config import ModelConfig
from evdet.training.config import TrainConfig

__all__ = ["RUN_CONFIG_NAME", "SECTIONS", "RunConfig", "load_run_config", "run_config_text",
           "write_run_config"]

RUN_CONFIG_NAME = "config.yaml"
"""The run configuration's file name in a run folder."""

_HEADER = ("# evdet-train run configuration: `evdet-train --config this.yaml --root-dir NEW_RUN` repeats "
           "the run\n")
SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
"""The option sections of a run configuration and their dataclasses."""


@dataclass(frozen=True)
class RunConfig:
    """What a run trains on and with which options (``dataset_dir`` None: not given yet)."""

    dataset_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain types: ``{"dataset_dir": ..., "model": {...}, "data": {...}, "train": {...}}``."""
        return {"dataset_dir": self.dataset_dir,
                **{name: config_to_dict(getattr(self, name)) for name in SECTIONS}}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "run configuration") -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing section keeps its defaults.

        Raises:
            ValueError: not a mapping, an unknown section or option, a value a config rejects (naming
                ``source``).
        """
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of dataset_dir, model, data, train; got "
                             f"{type(values).__name__}")
        unknown = sorted(set(values) - {"dataset_dir", *SECTIONS})
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}; valid are "
                             f"{['dataset_dir', *SECTIONS]}")
        sections = {}
        for name, cls_ in SECTIONS.items():
            try:
                sections[name] = config_from_dict(cls_, values.get(name))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: {name}: {exc}") from None
        dataset_dir = values.get("dataset_dir")
        return cls(dataset_dir=None if dataset_dir is None else str(dataset_dir), **sections)


def run_config_text(config: RunConfig) -> str:
    """The YAML text of ``config`` (sections in the order dataset_dir, model, data, train)."""
    import yaml

    class Dumper(yaml.SafeDumper):  # sections as blocks, lists on one line
        pass

    Dumper.add_representer(list, lambda dumper, value: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", value, flow_style=True))
    return _HEADER + yaml.dump(config.to_dict(), Dumper=Dumper, sort_keys=False, allow_unicode=True)


def write_run_config(path: str | os.PathLike, config: RunConfig) -> Path:
    """Write ``config`` to ``path`` atomically (a crash leaves the previous file or none)."""
    from evdet.io.atomic import atomic_open

    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(run_config_text(config))
    return Path(path)


def load_run_config(path: str | os.PathLike) -> RunConfig:
    """Read a run configuration written by :func:`write_run_config` (or by hand, any subset of options).

    Raises:
        FileNotFoundError: no such file. ValueError: not YAML, or options the configs reject (naming the
            file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run configuration not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a YAML run configuration ({str(exc).splitlines()[0]})") from None
    return RunConfig.from_dict({} if values is None else values, str(path))

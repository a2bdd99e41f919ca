"""The model catalog: which VSS signals each make and model can report (`R` in the formula)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from protocol.vss import UnknownSignalError, get_signal
from rewards.exceptions import RewardsConfigError

__all__ = ["CATALOG_FORMAT", "DEFAULT_CATALOG", "ModelCatalog", "model_key"]

CATALOG_FORMAT = "dimo-model-catalog-v1"
DEFAULT_CATALOG = Path(__file__).resolve().parent / "models.yaml"


def model_key(make: str, model: str) -> str:
    """How allocations name a model: `"Make|Model"` as minted."""
    return f"{make}|{model}"


@dataclass(frozen=True)
class ModelCatalog:
    """Reportable signals by (make, model), matched case-insensitively.

    Attributes:
        models: `(make.casefold(), model.casefold())` -> signal names.
        sha256: Hex SHA-256 of the catalog file, recorded in every allocation.
    """

    models: dict[tuple[str, str], frozenset[str]]
    sha256: str

    @classmethod
    def load(cls, path: Path | None = None) -> ModelCatalog:
        """Read and check a catalog file (the shipped `rewards/models.yaml` by default).

        Raises:
            RewardsConfigError: the file is missing or malformed, or names a signal that is
                not in the VSS catalog.
        """
        path = path or DEFAULT_CATALOG
        try:
            raw = path.read_bytes()
            doc: Any = yaml.safe_load(raw)
        except (OSError, yaml.YAMLError) as exc:
            raise RewardsConfigError("catalog", f"cannot read {path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != CATALOG_FORMAT:
            raise RewardsConfigError("catalog", f"{path} is not a {CATALOG_FORMAT} document")
        entries = doc.get("models")
        if not isinstance(entries, list):
            raise RewardsConfigError("catalog", f"{path}: `models` must be a list")
        models: dict[tuple[str, str], frozenset[str]] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise RewardsConfigError("catalog", f"{path}: models[{i}] is not a mapping")
            make, model, signals = entry.get("make"), entry.get("model"), entry.get("signals")
            if not isinstance(make, str) or not isinstance(model, str) or not make or not model:
                raise RewardsConfigError("catalog", f"{path}: models[{i}] needs make and model")
            if not isinstance(signals, list) or not signals:
                raise RewardsConfigError("catalog", f"{path}: models[{i}] lists no signals")
            for name in signals:
                try:
                    get_signal(str(name))
                except UnknownSignalError:
                    raise RewardsConfigError(
                        "catalog", f"{path}: {make} {model} lists unknown signal {name!r}"
                    ) from None
            key = (make.casefold(), model.casefold())
            if key in models:
                raise RewardsConfigError("catalog", f"{path}: {make} {model} is listed twice")
            models[key] = frozenset(str(s) for s in signals)
        return cls(models, hashlib.sha256(raw).hexdigest())

    def reportable(self, make: str, model: str) -> frozenset[str] | None:
        """The signals of `make` `model`, or None when the catalog does not list it."""
        return self.models.get((make.casefold(), model.casefold()))

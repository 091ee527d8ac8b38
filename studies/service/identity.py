"""A study's settings: everything a stored trial's result depends on besides its own searched
parameters. A rerun under the same name must have the same settings, or the study would mix
results of two configurations: a `smoke` run's 2-epoch trials counted as the `cpu` run's finished
grid points, or `--set normalize_losses=True` silently answered by the plain trials.

The settings are the trials' base configuration (the data set's defaults, the budget, the
--set values; sidae.config's dotted paths) without what depends on the machine rather than on
the experiment, plus the objective's label fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidae.config import SidAEConfig
from studies.service.trainable import TrialContext, trial_config

SETTINGS_ATTR = "settings"

# Where this machine keeps the data and which device it names: a study resumed from another
# machine of the same cluster may differ in these and still run the same trials (the device's
# effect on the model, a reduced ResNet on a CPU, shows in the model fields).
MACHINE_LOCAL = frozenset({"data.data_dir", "data.download", "data.verify", "device"})


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def study_settings(ctx: TrialContext) -> dict[str, Any]:
    """The settings of the study whose trials `ctx` configures (JSON-ready: a study attribute)."""
    config = _flat(trial_config({}, ctx).to_dict())
    return {
        "primary_fraction": ctx.budget.primary_fraction,
        **{k: v for k, v in sorted(config.items()) if k not in MACHINE_LOCAL},
    }


@dataclass(frozen=True)
class Difference:
    """A setting whose stored value differs from this run's."""

    key: str  # sidae.config's dotted path, or "primary_fraction"
    stored: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.key}={self.stored!r} (this run: {self.current!r})"

    @property
    def name_suffix(self) -> str:
        """A --name suffix that tells the two studies apart: the setting's last part."""
        return self.key.rsplit(".", 1)[-1].replace("_", "-")


def first_difference(stored: dict[str, Any], current: dict[str, Any]) -> Difference | None:
    """The first setting (in key order) that differs; None if they all match. A setting the
    stored ones lack is a config field added since the study was stored: its trials ran as the
    field's default does, so this run matches them if it keeps that default."""
    defaults = _flat(SidAEConfig().to_dict())
    for key in sorted(stored.keys() | current.keys()):
        if stored.get(key, defaults.get(key)) != current.get(key):
            return Difference(key, stored.get(key), current.get(key))
    return None

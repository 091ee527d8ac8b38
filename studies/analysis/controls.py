"""The controls a study stores once per seed (studies.service.baseline, sidae.controls): the
trials' own linear probe on the untrained encoder at the seed's initial weights and on raw
pixels. A pre-trained encoder that does not beat them learnt nothing a linear probe can use."""

from __future__ import annotations

import optuna

from studies.record import CONTROLS_ATTR, by_fraction

# stored name -> the row a table gives it
CONTROL_NAMES = {"untrained": "untrained encoder", "pixels": "raw pixels"}


def control_scores(study: optuna.Study, name: str) -> dict[int, dict[float, float]]:
    """seed -> label fraction -> test accuracy of control `name` ("untrained" or "pixels");
    empty when the study stores none."""
    stored = study.user_attrs.get(CONTROLS_ATTR) or {}
    return {
        int(seed): scores
        for seed, per in sorted(stored.items(), key=lambda s: int(s[0]))
        if (scores := by_fraction(per.get(name)))
    }

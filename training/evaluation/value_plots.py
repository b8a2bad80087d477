"""Value plots: predicted vs realised value per predicted decile, as an Axes for reports."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes

from training.evaluation.plots import _new_axes
from training.evaluation.value_metrics import decile_calibration


def plot_value_deciles(
    y, predictions: Mapping[str, np.ndarray] | np.ndarray, *, ax: Axes | None = None
) -> Axes:
    """Mean realised value per predicted decile (bars) and the mean predicted (markers).

    Several predictions (the model and its baselines) share the axes: each gets
    its bars side by side, decile 1 holding its highest predictions. A model that
    ranks well has falling bars; one that is calibrated has markers on its bars.
    """
    ax = _new_axes(ax, figsize=(7.0, 4.5))
    named = predictions if isinstance(predictions, Mapping) else {"model": predictions}
    width = 0.8 / max(len(named), 1)
    for k, (name, prediction) in enumerate(named.items()):
        table = decile_calibration(y, prediction)
        x = table.index.to_numpy() + (k - (len(named) - 1) / 2) * width
        bars = ax.bar(x, table["realised_mean"], width=width, label=f"{name}: realised", alpha=0.7)
        ax.plot(
            x, table["predicted_mean"], marker="o", linestyle="none",
            color=bars.patches[0].get_facecolor(), markeredgecolor="black",
            label=f"{name}: predicted",
        )  # fmt: skip
    ax.set(
        xticks=range(1, 11),
        xlabel="predicted decile (1 = highest predicted value)",
        ylabel="mean value per customer",
        title="Predicted vs realised value by decile",
    )
    ax.legend(fontsize="small")
    return ax

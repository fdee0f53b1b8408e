"""An HFSS job's convergence as a matplotlib figure, for notebooks:
``client.plot_convergence(job_id)`` (the optional extra ``simfarm[notebook]``)."""

from __future__ import annotations

from typing import Any

from simfarm.common.convergence import Convergence


def plot_convergence(convergence: Convergence, ax: Any = None) -> Any:
    """Max Mag. Delta S per adaptive pass on a log scale, the setup's target as a dashed
    line, the maximum passes as the x range; the sweep's progress in the title.
    Returns the figure (Jupyter shows it inline)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'simfarm[notebook]'") from exc
    if ax is None:
        figure, ax = plt.subplots(figsize=(7, 3.6))
    else:
        figure = ax.figure
    points = convergence.deltas()
    if points:
        ax.semilogy([p for p, _ in points], [d for _, d in points], "o-",
                    label="Max Mag. Delta S")
    if convergence.target_delta_s:
        ax.axhline(convergence.target_delta_s, color="tab:red", linestyle="--",
                   label=f"target {convergence.target_delta_s:g}")
    last = convergence.passes[-1].pass_ if convergence.passes else 1
    ax.set_xlim(0.8, max(convergence.max_passes or 0, last, 2) + 0.2)
    ax.set_xlabel("adaptive pass")
    ax.set_ylabel("Max Mag. Delta S")
    title = f"job {convergence.job_id[:12]} · {convergence.state.value}"
    if convergence.converged is not None:
        title += " · converged" if convergence.converged else " · not converged"
    sweep = convergence.sweep
    if sweep is not None:
        title += f" · sweep {sweep.solved}/{sweep.frequencies or '?'}"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if points or convergence.target_delta_s:
        ax.legend()
    plt.close(figure)  # returned, not also drawn a second time by pyplot's state
    return figure

"""Figures the kit draws itself (so they stay in sync with the course): the course map."""

from __future__ import annotations

from pathlib import Path

from llmops_helpers.paths import kit_root

#: (lab, title, lifecycle stage) — the course outline, one row a lab.
COURSE = [
    ("00", "Setup & first call", "Setup"),
    ("01", "Ideate & prompt engineering", "Ideate / explore"),
    ("02", "The app as a prompt flow", "Build / augment"),
    ("03", "Evaluate on a golden dataset", "Build / augment"),
    ("04", "Augment (RAG) & responsible AI", "Build / augment"),
    ("05", "Branching & environments", "Operationalize"),
    ("06", "CI/CD, gates & rollouts", "Operationalize"),
    ("07", "Operate & monitor", "Operationalize"),
]
STAGE_COLOURS = {
    "Setup": "#d9d9d9",
    "Ideate / explore": "#9ecae1",
    "Build / augment": "#a1d99b",
    "Operationalize": "#fdae6b",
}


def coming_labs(solutions: Path | None = None) -> list[str]:
    """The labs of :data:`COURSE` that have no notebook in ``solutions/`` yet: the course map and the README mark
    them "coming", so nobody is promised a lab that is not there."""
    folder = solutions or kit_root() / "solutions"
    have = {path.name[:2] for path in folder.glob("[0-9][0-9]_*.ipynb")}
    return [lab for lab, _, _ in COURSE if lab not in have]


def course_map(path: Path | None = None, coming: list[str] | None = None):
    """Draw the lifecycle loop with the labs under each stage; a lab in ``coming`` (default:
    :func:`coming_labs`) is drawn dashed and grey, marked "coming". Save to ``path`` if given; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    coming = coming_labs() if coming is None else coming
    stages = list(STAGE_COLOURS)
    fig, ax = plt.subplots(figsize=(12, 5.2), dpi=100)
    ax.set_xlim(0, 12)
    ax.set_ylim(-0.5, 5.0)
    ax.axis("off")
    ax.set_title("LLMOps workshop: the lifecycle and the lab for each step", fontsize=14, weight="bold")
    width, gap, top = 2.6, 0.4, 4.2
    for i, stage in enumerate(stages):
        x = 0.3 + i * (width + gap)
        ax.add_patch(FancyBboxPatch((x, top - 0.55), width, 0.55, boxstyle="round,pad=0.05",
                                    fc=STAGE_COLOURS[stage], ec="black"))
        ax.text(x + width / 2, top - 0.27, stage, ha="center", va="center", fontsize=11, weight="bold")
        labs = [c for c in COURSE if c[2] == stage]
        for j, (lab, title, _) in enumerate(labs):
            y = top - 1.35 - j * 0.9
            later = lab in coming
            ax.add_patch(FancyBboxPatch((x, y), width, 0.7, boxstyle="round,pad=0.04", fc="#f7f7f7" if later else
                                        "white", ec="#aaaaaa" if later else STAGE_COLOURS[stage], lw=2,
                                        ls="--" if later else "-"))
            ax.text(x + width / 2, y + 0.5, f"Lab {lab}" + (" — coming" if later else ""), ha="center", va="center",
                    fontsize=9, weight="bold", color="#888888" if later else "black")
            ax.text(x + width / 2, y + 0.2, title, ha="center", va="center", fontsize=8.5,
                    color="#888888" if later else "black")
        if i < len(stages) - 1:
            ax.add_patch(FancyArrowPatch((x + width + 0.05, top - 0.27), (x + width + gap - 0.05, top - 0.27),
                                         arrowstyle="-|>", mutation_scale=16))
    loop_start = 0.3 + 3 * (width + gap) + width / 2
    loop_end = 0.3 + 1 * (width + gap) + width / 2
    ax.add_patch(FancyArrowPatch((loop_start, 0.25), (loop_end, 0.25), connectionstyle="arc3,rad=-0.12",
                                 arrowstyle="-|>", mutation_scale=16, color="#555555"))
    ax.text((loop_start + loop_end) / 2, -0.35, "monitoring and nightly evaluation feed the next iteration",
            ha="center", fontsize=9, style="italic", color="#555555")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    return fig


LIFECYCLE = [
    ("Ideate / explore", "#9ecae1", ["find the use case", "try models and prompts", "a first, small test set"]),
    ("Build / augment", "#a1d99b", ["the app as a flow", "RAG over your data", "evaluate; responsible AI"]),
    ("Operationalize", "#fdae6b", ["CI/CD with quality gates", "deploy, canary, roll back", "monitor cost & drift"]),
]


def lifecycle_loop(path: Path | None = None):
    """The LLMOps loop: three stages in a cycle, each with what a team does there."""
    import math

    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9, 6.2), dpi=100)
    ax.set_xlim(-5, 5)
    ax.set_ylim(-3.4, 3.9)
    ax.axis("off")
    ax.set_title("The LLMOps lifecycle: a loop, not a line", fontsize=14, weight="bold")
    angles = [90, -30, 210]
    centres = [(2.7 * math.cos(math.radians(a)), 2.5 * math.sin(math.radians(a))) for a in angles]
    for (name, colour, points), (x, y) in zip(LIFECYCLE, centres, strict=True):
        ax.add_patch(FancyBboxPatch((x - 1.6, y - 0.85), 3.2, 1.7, boxstyle="round,pad=0.1", fc=colour, ec="black"))
        ax.text(x, y + 0.45, name, ha="center", va="center", fontsize=12, weight="bold")
        ax.text(x, y - 0.25, "\n".join(points), ha="center", va="center", fontsize=9)
    for i in range(3):
        (x1, y1), (x2, y2) = centres[i], centres[(i + 1) % 3]
        ax.add_patch(FancyArrowPatch((x1 * 0.55, y1 * 0.55), (x2 * 0.55, y2 * 0.55), connectionstyle="arc3,rad=-0.35",
                                     arrowstyle="-|>", mutation_scale=20, lw=2, color="#444444"))
    ax.text(0, 0, "measure\nevery\nchange", ha="center", va="center", fontsize=10, style="italic", color="#444444")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    return fig


def make_images(folder: Path | None = None) -> list[Path]:
    """Regenerate every kit-drawn image into ``images/``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = folder or kit_root() / "images"
    targets = [folder / "course_map.png", folder / "llmops_lifecycle.png"]
    plt.close(course_map(targets[0]))
    plt.close(lifecycle_loop(targets[1]))
    return targets

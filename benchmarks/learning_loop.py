"""Learn a new park: a person reviews N photos of a batch, a site's model is fitted on them, and the rest
of the batch is answered again. Simulated on the project's own labelled camera-trap sets, one project at a
time as the "new park".

    python benchmarks/learning_loop.py [--model serengeti] [--sizes 10,20,50,100] [--seeds 3]
                                       [--data ../shared/data/camera_traps] [--plot docs/learning_loop.png]

Each project's frames (those of benchmarks/verdict.py) are labelled by the bundle as `python -m classifier
predict` labels them (detector, verdict, no country), keeping what the classifier saw
(classifier/models/embeddings.py, in a store under benchmarks/results). Then, for each N, the reviewer
(simulated: the frame's true label, the bundle's class where it has one, else the species' own name as a
new class, `blank` for empty frames) reviews N frames chosen by the teaching queue
(classifier/results/queue.py) or at random (`--seeds` draws), the site's model is fitted on them
(classifier/models/site.py `adapt`) and the other frames are answered again (`relabel`). Figures, on the
frames not reviewed: the model's first class right (top-1), before (the bundle) and after; the share of
the whole batch right (reviewed frames count as right); the new classes' share of the answers (whether a
typed class swamps the rest); the seconds the fit and the re-labelling took. A third way is measured
beside: the fit taught again with the rest's own sure answers added (self-training: the frames nobody
labelled, by what they look like).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.record import REPO, write_results
from benchmarks.verdict import PROJECT, labelled_frames
from classifier.models.bundles import detector_settings, resolve_bundle
from classifier.models.detect import Detector
from classifier.models.embeddings import Embeddings
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_linear_head, load_model
from classifier.models.site import adapt, pictures, relabel
from classifier.results.queue import teaching_order
from classifier.schema.rows import BLANK, OK, Row

PROJECTS = (
    "chimpandsee_fieldguide",
    "chicago_wildlife_watch_fieldguide",
    "snapshot_wisconsin_fieldguide",
    "camtrapR_borneo",
)


def truth_labels(rows: list[dict]) -> dict[str, set[str]]:
    """What a reviewer would call each frame: the bundle's classes that are right, else the species' name."""
    truth = {}
    for row in rows:
        if row["label"] in ("blank", "empty"):
            truth[row["path"]] = {"blank"}
        else:
            truth[row["path"]] = set(filter(None, row["right"].split("|"))) or {row["label"]}
    return truth


def first_class(row: Row) -> str:
    if row.observation_type == BLANK:
        return "blank"
    return row.top_k[0][0] if row.top_k else row.label


def predicted(project: str, data: Path, predictor: Predictor) -> tuple[list[Row], dict[str, set[str]], float]:
    rows = [r for r in labelled_frames(data) if PROJECT.get(r["subset"], r["subset"]) == project]
    started = time.perf_counter()
    out = list(predictor.predict_many([data / r["path"] for r in rows]))
    seconds = time.perf_counter() - started
    truth = truth_labels(rows)
    by_path = {str(data / r["path"]): r["path"] for r in rows}
    for row in out:
        row.path = by_path[row.path]
    return [r for r in out if r.status != "error"], truth, seconds


def one_round(rows, truth, chosen, base_head, predictor, store, self_train: bool) -> dict:
    classes = predictor.classes
    taught = [(rows[i], min(truth[rows[i].path])) for i in chosen]
    rest = [i for i in range(len(rows)) if i not in set(chosen)]
    started = time.perf_counter()
    site = adapt(base_head, classes, taught, store, predictor.crop_margin, name="site")
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    answers = {
        i: relabel(rows[i], site, store, predictor.rules, predictor.crop_margin) or rows[i] for i in rest
    }
    relabelled = time.perf_counter() - started
    if self_train:
        sure = [
            (answers[i], answers[i].label)
            for i in rest
            if answers[i].status == OK and answers[i].label in site.classes
        ]
        site = adapt(base_head, classes, taught + sure, store, predictor.crop_margin, name="site")
        answers = {
            i: relabel(rows[i], site, store, predictor.rules, predictor.crop_margin) or rows[i] for i in rest
        }
    before = [first_class(rows[i]) in truth[rows[i].path] for i in rest]
    after = [first_class(answers[i]) in truth[rows[i].path] for i in rest]
    new = [first_class(answers[i]) in site.new_classes for i in rest]
    return {
        "rest": len(rest),
        "before": _share(before),
        "after": _share(after),
        "batch_right": round((len(chosen) + sum(after)) / len(rows), 3),
        "new_class_share": _share(new),
        "fit_seconds": round(fitted, 2),
        "relabel_seconds": round(relabelled, 2),
    }


def measure(project: str, data: Path, predictor: Predictor, base_head, store, sizes, seeds: int) -> dict:
    rows, truth, seconds = predicted(project, data, predictor)
    vectors = store.vectors([pictures(row, predictor.crop_margin) for row in rows])
    results: dict = {"frames": len(rows), "predict_seconds": round(seconds, 1), "runs": defaultdict(list)}
    for size in sizes:
        if size >= len(rows):
            continue
        queue = teaching_order(rows, vectors, size)
        results["runs"]["queue"].append(
            {"n": size, **one_round(rows, truth, queue, base_head, predictor, store, False)}
        )
        results["runs"]["queue+self"].append(
            {"n": size, **one_round(rows, truth, queue, base_head, predictor, store, True)}
        )
        draws = [
            one_round(
                rows,
                truth,
                list(np.random.default_rng(s).choice(len(rows), size, replace=False)),
                base_head,
                predictor,
                store,
                False,
            )
            for s in range(seeds)
        ]
        results["runs"]["random"].append(
            {"n": size, **{k: round(float(np.mean([d[k] for d in draws])), 3) for k in draws[0]}}
        )
    return results


def plot(figures: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(figures), figsize=(4 * len(figures), 3.4), sharey=True)
    for ax, (project, result) in zip(np.atleast_1d(axes), figures.items(), strict=True):
        for name, style in (("queue", "-o"), ("random", "--s")):
            runs = result["runs"][name]
            ax.plot([r["n"] for r in runs], [r["after"] for r in runs], style, label=f"retrained ({name})")
        base = result["runs"]["random"]
        ax.plot([r["n"] for r in base], [r["before"] for r in base], ":", color="grey", label="the bundle")
        ax.set_title(project.replace("_fieldguide", "").replace("_", " "), fontsize=9)
        ax.set_xlabel("frames reviewed")
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("top-1 on the frames not reviewed")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serengeti")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camera_traps")
    parser.add_argument("--sizes", type=lambda t: [int(v) for v in t.split(",")], default=[10, 20, 50, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    bundle = resolve_bundle(args.model, REPO / "models")
    with tempfile.TemporaryDirectory() as folder:
        store = Embeddings(Path(folder) / "embeddings.sqlite")
        predictor = Predictor(
            load_model(bundle), detector=Detector(**detector_settings(bundle)), embeddings=store
        )
        base_head = load_linear_head(bundle)
        figures = {
            p: measure(p, args.data, predictor, base_head, store, args.sizes, args.seeds) for p in PROJECTS
        }
    for project, result in figures.items():
        print(f"{project}: {result['frames']} frames, labelled in {result['predict_seconds']} s")
        for name, runs in result["runs"].items():
            for r in runs:
                print(
                    f"  {name:10s} N={r['n']:3d}: top-1 on the other {r['rest']:.0f} {r['before']:.3f} -> {r['after']:.3f}; "
                    f"batch right {r['batch_right']:.3f}; new classes {r['new_class_share']:.2f} of answers; "
                    f"fit {r['fit_seconds']:.2f} s, re-label {r['relabel_seconds']:.2f} s"
                )
    if args.plot:
        plot(figures, args.plot)
        print(f"wrote {args.plot}")
    write_results(f"learning_loop-{args.model}", figures)


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


if __name__ == "__main__":
    main()

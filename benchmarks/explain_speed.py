"""What a heatmap costs beside the prediction it explains, as the classify page runs both.

    .venv/bin/python benchmarks/explain_speed.py                    # serengeti, whole frames
    .venv/bin/python benchmarks/explain_speed.py --detector         # and with the animal detector first
    .venv/bin/python benchmarks/explain_speed.py --model habitat --photos 20

Each photo is decoded as the page decodes it (`load_photo`, JPEGs at a reduced scale no smaller than
1024 px), then, alternately so both see the same load on the machine, timed `repeats` times: the
prediction (`Predictor.predict_photo`, the detector's boxes and crops included with --detector) and the
heatmap the toggle adds (`explain`: the whole frame and each animal's crop, plus drawing the frame's
overlay at the page's size). Prints the medians and the ratio heatmap / prediction (target: at most
1.5), and writes benchmarks/results/explain_speed-<time>.json.
The photos are real camera-trap frames from ../shared/data (full-size ones first), else generated
12-megapixel JPEGs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app sets it

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.intake.images import load_photo  # noqa: E402
from classifier.models.bundles import resolve_bundle  # noqa: E402
from classifier.models.explain import DEFAULT_METHOD, explain, overlay  # noqa: E402
from classifier.models.predict import Predictor  # noqa: E402
from classifier.models.runtimes import TORCH, default_runtime, load_model  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "camera_traps"
DISPLAY_SIZE = 1024  # app_pages/classify.py decodes at most this
TARGET_RATIO = 1.5


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    bundle = resolve_bundle(args.model)
    detector = None
    if args.detector:
        from classifier.models.detect import Detector

        detector = Detector(confidence=0.25)
    # As the app: prediction on the app's runtime, the heatmap on the torch network's two parts.
    predictor = Predictor(load_model(bundle, runtime=default_runtime(app=True)), detector=detector, top_k=5)
    network = (
        predictor.network if hasattr(predictor.network, "body") else load_model(bundle, runtime=TORCH).network
    )
    with tempfile.TemporaryDirectory(prefix="explain_speed-") as scratch:
        paths = photos(args.photos, Path(scratch))
        figures = measure(predictor, network, paths, args.repeats, args.method)
    figures |= {
        "benchmark": "explain_speed",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": bundle.name,
        "detector": bool(detector),
        "method": args.method,
        "runtime": type(predictor.network).__name__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "target_ratio": TARGET_RATIO,
    }
    print(
        f"{bundle.name}{' with the detector' if detector else ''}, {figures['photos']} photos x {args.repeats}, "
        f"{figures['threads']} torch threads: prediction median {figures['prediction_ms']:.0f} ms, heatmap "
        f"median {figures['heatmap_ms']:.0f} ms (whole frame + {figures['crops_median']:.0f} crops), ratio of "
        f"medians {figures['ratio_of_medians']:.2f}, median of per-photo ratios {figures['median_ratio']:.2f} "
        f"(target at most {TARGET_RATIO})"
    )
    from record import write_results

    write_results("explain_speed", figures)
    return 0


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    result.add_argument("--model", default=None, help="bundle name or folder (default: serengeti)")
    result.add_argument("--detector", action="store_true", help="find animals first, as detector bundles do")
    result.add_argument("--photos", type=int, default=12)
    result.add_argument("--repeats", type=int, default=5)
    result.add_argument("--method", default=DEFAULT_METHOD)
    return result


def photos(count: int, scratch: Path) -> list[Path]:
    if DATA.is_dir():
        found = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
        found = [p for p in found if "truncated" not in p.name and "blank" not in p.name]
        found.sort(key=lambda p: -p.stat().st_size)  # full-size frames first: the app's usual upload
        return found[:count]
    sys.path.insert(0, str(REPO / "benchmarks"))
    from app_memory import generated_photo

    return [generated_photo(scratch / f"photo{i}.jpg") for i in range(min(count, 3))]


def measure(
    predictor: Predictor, network: torch.nn.Module, paths: list[Path], repeats: int, method: str
) -> dict:
    prediction, heatmap, ratios, crops = [], [], [], []
    first = load_photo(paths[0], target_size=DISPLAY_SIZE).image
    explain(
        predictor,
        first,
        predictor.predict_photo(paths[0], name=paths[0].name),
        method=method,
        network=network,
    )  # warm-up: TorchScript's first runs
    for path in paths:
        image = load_photo(path, target_size=DISPLAY_SIZE).image
        predicted, explained = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            row = predictor.predict_photo(path, name=path.name)
            predicted.append(time.perf_counter() - started)
            started = time.perf_counter()
            found = explain(predictor, image, row, method=method, network=network)
            overlay(image, found.frame, max_side=DISPLAY_SIZE)  # as the page draws it
            explained.append(time.perf_counter() - started)
        crops.append(len(found.crops))
        p, h = statistics.median(predicted), statistics.median(explained)
        prediction.append(p)
        heatmap.append(h)
        ratios.append(h / p)
        print(
            f"{path.name}: {image.size[0]}x{image.size[1]}, prediction {p * 1000:.0f} ms, heatmap {h * 1000:.0f} ms"
        )
    return {
        "photos": len(paths),
        "repeats": repeats,
        "prediction_ms": 1000 * statistics.median(prediction),
        "heatmap_ms": 1000 * statistics.median(heatmap),
        "ratio_of_medians": statistics.median(heatmap) / statistics.median(prediction),
        "median_ratio": statistics.median(ratios),
        "max_ratio": max(ratios),
        "crops_median": statistics.median(crops),
        "per_photo": [
            {"photo": p.name, "prediction_ms": 1000 * a, "heatmap_ms": 1000 * b, "crops": c}
            for p, a, b, c in zip(paths, prediction, heatmap, crops, strict=True)
        ],
    }


if __name__ == "__main__":
    sys.exit(main())

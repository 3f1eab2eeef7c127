"""Offline training: `python -m train --data PATH --name NAME [recipe options]` (see `train.recipe`).

Turns labeled photos into a model bundle, `models/NAME/model.pkl` (a fastai `Learner.export()` that loads
where only `classifier` is importable) and `models/NAME/report.json` (the evaluation report).
"""

import os

# Threads that sleep instead of spinning between operations: on a machine whose cores are shared (other
# programs, other users) spinning OpenMP threads made epochs up to 50x slower. Set before torch loads
# (`python -m train` imports this package first); OMP_WAIT_POLICY=ACTIVE in the environment still wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from train.command_line import config_from_args
from train.pipeline import TrainResult, train
from train.recipe import TrainConfig, build_parser

__all__ = ["TrainConfig", "TrainResult", "build_parser", "config_from_args", "train"]

"""The training run a `python -m train` command line asks for: its options, completed from the base
bundle's recipe when it retrains one."""

from __future__ import annotations

from train.base import with_base_recipe
from train.recipe import TrainConfig, build_parser


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """The options of the command line; with --base-model, those not given come from the base's recipe.

    Raises `classifier.models.bundles.BundleError` when --base-model names no bundle.
    """
    args = build_parser().parse_args(argv)
    config = TrainConfig(**vars(args))
    if config.base_model:
        given = set(vars(build_parser(defaults=False).parse_args(argv)))
        config = with_base_recipe(config, given)
    return config

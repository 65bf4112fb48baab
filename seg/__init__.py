"""seg: Hydra-composed segmentation experiments with Keras 3 and MLflow.

The packages, each one phase; imports point one way, down this list (``tests/test_layout.py``
keeps it so):

- :mod:`seg.cli` - the console scripts (Hydra entry points); :mod:`seg.commands` - ``seg``
  itself (version, ``seg init``: :mod:`seg.project`);
- :mod:`seg.runner` - one run: preflight, the MLflow run, resume, the stages, sweeps;
- :mod:`seg.tracking` - everything that talks to MLflow (the only package importing it);
- :mod:`seg.training` - model/loss/optimizer factory, callbacks, checkpoints, devices;
- :mod:`seg.evaluation` - Keras metrics, per-image scoring, surface distances, reports;
- :mod:`seg.inference` - prediction of files of any size: tiling, TTA, post-processing, pictures;
- :mod:`seg.data`, :mod:`seg.models`, :mod:`seg.losses` - pairs and pipelines, architectures,
  loss functions;
- :mod:`seg.config` - the typed schemas of every config group, their validation, the allow-list;
- :mod:`seg.errors` - the errors a user can cause.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seg")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

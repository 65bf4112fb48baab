"""Training: models, losses and optimizers built from their config nodes, the callbacks of a
fit (per-epoch records, checkpoints, divergence guard, masks per epoch), the resume state,
TensorFlow's share of the machine and the distribution strategy, and reading model files.

May import :mod:`seg.evaluation`, :mod:`seg.inference`, :mod:`seg.data`, :mod:`seg.models`,
:mod:`seg.losses`, :mod:`seg.config` and :mod:`seg.errors`; never MLflow (the callbacks write
to a run through the small ``RunLog`` protocol that :mod:`seg.tracking` implements).
"""

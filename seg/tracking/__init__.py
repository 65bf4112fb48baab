"""Everything that talks to MLflow, and the only package that imports it: the run's tracker
and the store it writes to, the spool that keeps records while the store is unreachable (and
``seg-sync``, which delivers them), loading a logged model with its preprocessing, queries of
runs, and a sweep's parent run with its summary.

May import :mod:`seg.training` (to read model files), :mod:`seg.data`, :mod:`seg.config` and
:mod:`seg.errors`.
"""

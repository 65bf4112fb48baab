"""One run of an entry point: check everything it will read (preflight), open the MLflow run
(or continue an interrupted one), execute the configured stages, close the run whatever
happens; and the Hydra callback that gives a sweep its parent run.

The top of the import graph below :mod:`seg.cli`: it may import every other package; none
imports it. TensorFlow and MLflow are imported only once the config and the files checked.
"""

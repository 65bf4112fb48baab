"""The stages of a run, each a function of the shared :class:`seg.runner.context.Context`."""

from seg.config.run import Stage
from seg.runner.stages.evaluate import evaluate
from seg.runner.stages.infer import infer
from seg.runner.stages.train import train

# The implementation of each stage the schema names (seg.config.run.Stage holds the names).
STAGES = {Stage.train: train, Stage.evaluate: evaluate, Stage.infer: infer}

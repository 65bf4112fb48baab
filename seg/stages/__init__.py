"""The stages of a run, each a function of the shared :class:`seg.run.Context`."""

from seg.stages.evaluate import evaluate
from seg.stages.infer import infer
from seg.stages.train import train

STAGES = {"train": train, "evaluate": evaluate, "infer": infer}

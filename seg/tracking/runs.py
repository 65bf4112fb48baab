"""Queries of runs: one by id, and the unfinished runs a resume may continue."""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from seg.tracking.store import (
    store_lock,
)

log = logging.getLogger(__name__)


def find_run(tracking_uri: str, run_id: str) -> mlflow.entities.Run | None:
    try:
        with store_lock(tracking_uri):  # the first access may create a new store
            return MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        return None


def unfinished_runs(
    tracking_uri: str, experiment_name: str, task: str
) -> list[mlflow.entities.Run]:
    """Runs of ``task`` in the experiment that did not finish (RUNNING ones too: a process
    killed without notice leaves its run RUNNING), newest first."""
    client = MlflowClient(tracking_uri)
    with store_lock(tracking_uri):  # the first access may create a new store
        experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.status != 'FINISHED' and tags.`seg.task` = '{task}'",
            order_by=["attributes.start_time DESC"],
            max_results=200,
        )
    )

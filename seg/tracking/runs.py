"""Queries of runs: one by id, the run a model came from, the unfinished runs a resume may
continue, and a name no run of the experiment has yet."""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from seg.tracking.naming import run_id_of
from seg.tracking.store import store_lock

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


def source_run(tracking_uri: str, checkpoint: str) -> mlflow.entities.Run | None:
    """The training run a ``checkpoint=`` names or came from: a run id or runs:/ URI, or a
    models:/ URI (a registered version, an alias, a logged model's id); None for a file or
    what the store does not know."""
    run_id = run_id_of(checkpoint)
    if run_id is None and checkpoint.startswith("models:/"):
        client = MlflowClient(tracking_uri)
        name, _, version = checkpoint.removeprefix("models:/").partition("/")
        name, _, alias = name.partition("@")
        try:
            if name.startswith("m-") and not version and not alias:
                run_id = client.get_logged_model(name).source_run_id
            elif alias:
                run_id = client.get_model_version_by_alias(name, alias).run_id
            elif version.isdigit():
                run_id = client.get_model_version(name, version).run_id
        except MlflowException:
            return None
    return find_run(tracking_uri, run_id) if run_id else None


def unique_run_name(tracking_uri: str, experiment_name: str, base: str) -> str:
    """``base``, or ``base (2)``, ``(3)``...: the first name no run of the experiment has."""
    client = MlflowClient(tracking_uri)
    with store_lock(tracking_uri):  # the first access may create a new store
        experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return base
    # The names starting like ``base``, up to a quote (MLflow's filter strings cannot escape
    # one; LIKE's wildcards only widen the list, which is then matched exactly).
    prefix = base.split("'")[0]
    taken = {
        r.info.run_name
        for r in client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.run_name LIKE '{prefix}%'" if prefix else "",
            max_results=5000,
        )
    }
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} ({n})"
    return name


def find_experiment_name(tracking_uri: str, experiment_id: str) -> str | None:
    try:
        return MlflowClient(tracking_uri).get_experiment(experiment_id).name
    except MlflowException:
        return None

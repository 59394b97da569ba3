"""MLflow tracking and model registry of the global model, and the weekly champion policy.

Plain Python over ``mlflow.MlflowClient`` (no Dagster, no global MLflow state): every training
is a run in the ``smartgrid-load-forecasting`` experiment with its parameters, metrics (train
rows, seconds, holdout MAE / rMAE, the champion's rMAE on the same points) and the model (an
MLflow pyfunc whose python model carries the fitted ``GlobalGBM``), registered as a version of
``smartgrid-load-gbm`` tagged with its ``cutoff`` (the issue day whose history it saw: data
before 00:00 local of that day), a ``fingerprint`` of what it forecasts (time zone, levels,
config) and whether it was ``promoted``.

Policy (``model_for_issue``), for a forecast issued at 00:00 local of day I:

- a new model is trained on the history before I when no version of the same fingerprint has
  a cutoff in (I - refit_days, I]: the global model is refit weekly;
- it is *promoted* only when its backtest beats the champion: its rMAE (MAE over naive-1d's
  MAE) on the held-out newest training days, against the champion's rMAE on the same points
  (days the champion never saw; its own recorded score when there are none). The first model
  of a fingerprint is promoted. The alias ``champion`` moves to a promoted version unless a
  promoted version with a later cutoff holds it already (a backfill never demotes);
- the forecast uses the champion *as of I*: the promoted version with the latest cutoff at or
  before I. A backfill of a past day therefore uses a model trained only on data before its
  issue time, and re-running an issue uses the same model as before.

Settings give the tracking URI (``MLFLOW_TRACKING_URI``, default an SQLite store under
``SMARTGRID_HOME``); an SQLite store keeps artifacts in ``mlflow-artifacts`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from smartgrid_assets.forecasting.config import ForecastConfig
from smartgrid_assets.forecasting.gbm import GlobalGBM
from smartgrid_assets.forecasting.grid import Grid, day_number, day_of

EXPERIMENT = "smartgrid-load-forecasting"
MODEL_NAME = "smartgrid-load-gbm"
ALIAS = "champion"


def _quiet() -> None:
    for name in ("mlflow", "alembic", "mlflow.store.db.utils", "mlflow.pyfunc"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fingerprint(tz: str, config: ForecastConfig, extra: str = "") -> str:
    """What a model forecasts: models of another fingerprint are never compared or reused."""
    blob = json.dumps(
        {"tz": tz, "levels": list(config.levels), "params": config.gbm_params(), "x": extra},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Version:
    version: str
    run_id: str
    cutoff: int  # issue day number of the history the model saw
    promoted: bool
    holdout_rmae: float
    source: str


def _artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(urlparse(tracking_uri).path)
        return (db.parent / "mlflow-artifacts").resolve().as_uri()
    if "://" not in tracking_uri:  # a plain folder: a file store
        return None
    return None


class ForecastRegistry:
    """Tracking runs and registered versions of the global model at one tracking URI."""

    def __init__(self, tracking_uri: str) -> None:
        _quiet()
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        if tracking_uri.startswith("sqlite:///"):
            Path(urlparse(tracking_uri).path).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None
        self._loaded: dict[str, GlobalGBM] = {}

    # -- tracking -------------------------------------------------------------------------

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                self._experiment_id = self.client.create_experiment(
                    EXPERIMENT, artifact_location=_artifact_root(self.tracking_uri)
                )
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def log_run(
        self,
        name: str,
        params: dict,
        metrics: dict[str, float],
        tags: dict[str, str] | None = None,
        model: GlobalGBM | None = None,
    ) -> str:
        """One run with its parameters, finite metrics, tags and (optionally) the model."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags or {})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(k, float(v), now, 0)
                for k, v in metrics.items()
                if v is not None and np.isfinite(v)
            ],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        if model is not None:
            self._log_model(run_id, model)
        self.client.set_terminated(run_id)
        return run_id

    def _log_model(self, run_id: str, model: GlobalGBM) -> None:
        import mlflow.pyfunc
        import sklearn

        from smartgrid_assets.forecasting.mlflow_model import GbmPyfunc

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                str(path),
                python_model=GbmPyfunc(model),
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", "numpy", "pandas"],
            )
            self.client.log_artifacts(run_id, str(path), "model")

    # -- registry -------------------------------------------------------------------------

    def versions(self, fp: str) -> list[Version]:
        """Registered versions of the fingerprint, oldest cutoff first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{MODEL_NAME}'")
        except MlflowException:
            return []
        out = []
        for v in found:
            tags = v.tags or {}
            if tags.get("fingerprint") != fp or "cutoff" not in tags:
                continue
            out.append(
                Version(
                    version=str(v.version),
                    run_id=v.run_id,
                    cutoff=day_number(date_from(tags["cutoff"])),
                    promoted=tags.get("promoted") == "true",
                    holdout_rmae=float(tags.get("holdout_rmae", "nan")),
                    source=v.source,
                )
            )
        return sorted(out, key=lambda v: (v.cutoff, int(v.version)))

    def champion(self) -> Version | None:
        """The version the alias ``champion`` points at, if any."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(MODEL_NAME, ALIAS)
        except MlflowException:
            return None
        tags = mv.tags or {}
        return Version(
            version=str(mv.version),
            run_id=mv.run_id,
            cutoff=day_number(date_from(tags["cutoff"])) if "cutoff" in tags else -1,
            promoted=tags.get("promoted") == "true",
            holdout_rmae=float(tags.get("holdout_rmae", "nan")),
            source=mv.source,
        )

    def register(self, run_id: str, fp: str, cutoff: int, promoted: bool, tags: dict) -> Version:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(MODEL_NAME)
        except MlflowException:
            self.client.create_registered_model(MODEL_NAME)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        all_tags = {
            **{k: str(v) for k, v in tags.items()},
            "fingerprint": fp,
            "cutoff": day_of(cutoff).isoformat(),
            "promoted": "true" if promoted else "false",
        }
        mv = self.client.create_model_version(MODEL_NAME, source, run_id=run_id, tags=all_tags)
        version = Version(
            version=str(mv.version),
            run_id=run_id,
            cutoff=cutoff,
            promoted=promoted,
            holdout_rmae=float(tags.get("holdout_rmae", "nan")),
            source=source,
        )
        if promoted:
            current = self.champion()
            if current is None or current.cutoff <= cutoff:
                self.client.set_registered_model_alias(MODEL_NAME, ALIAS, version.version)
        return version

    def load(self, version: Version) -> GlobalGBM:
        """The fitted model of a registered version (cached per version)."""
        if version.version not in self._loaded:
            import mlflow.pyfunc

            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                source = urlparse(version.source)
                if source.scheme == "file" and Path(source.path).is_dir():
                    local = source.path  # a local artifact store: read in place
                else:
                    local = self.client.download_artifacts(version.run_id, "model", tmp)
                wrapped = mlflow.pyfunc.load_model(local)
                self._loaded[version.version] = wrapped.unwrap_python_model().model
        return self._loaded[version.version]

    def load_champion(self) -> tuple[Version, GlobalGBM] | None:
        """The alias ``champion``'s version and model (the live forecast's model)."""
        version = self.champion()
        return None if version is None else (version, self.load(version))


def date_from(text: str):
    from datetime import date

    return date.fromisoformat(text)


def champion_as_of(versions: list[Version], day: int) -> Version | None:
    """The promoted version with the latest cutoff at or before ``day``."""
    promoted = [v for v in versions if v.promoted and v.cutoff <= day]
    return promoted[-1] if promoted else None


@dataclass(frozen=True)
class Choice:
    """The model an issue uses, and what training (if any) happened for it."""

    version: Version | None
    model: GlobalGBM | None
    trained: Version | None  # the version trained for this issue, promoted or not


def train_and_register(
    registry: ForecastRegistry,
    hist: Grid,
    config: ForecastConfig,
    fp: str,
    versions: list[Version] | None = None,
) -> Version | None:
    """Fit the global model on ``hist`` (data before its issue day), log the run, register the
    version and promote it when it beats the champion as of that day. None when the history is
    too short to fit."""
    versions = registry.versions(fp) if versions is None else versions
    cutoff = hist.end_day
    start = time.perf_counter()
    model = GlobalGBM(config).fit(hist, score=True)
    seconds = time.perf_counter() - start
    if not model.fitted:
        return None
    score = model.holdout.get("holdout_rmae", float("nan"))
    champ = champion_as_of(versions, cutoff)
    champ_score = float("nan")
    if champ is not None:
        champion_model = registry.load(champ)
        mine, theirs = model.compare_on_holdout(hist, champion_model)
        if np.isfinite(theirs):
            score, champ_score = mine, theirs
        else:  # the champion saw every held-out day: its own recorded score
            champ_score = champ.holdout_rmae
    promoted = champ is None or (
        np.isfinite(score) and (not np.isfinite(champ_score) or score < champ_score)
    )
    metrics = {
        **model.holdout,
        "compared_rmae": score,
        "champion_rmae": champ_score,
        "train_rows": float(model.train_rows),
        "fit_seconds": seconds,
        **{f"band_p10_lead{lead}": lo for lead, (lo, _) in model.bands.items()},
        **{f"band_p90_lead{lead}": hi for lead, (_, hi) in model.bands.items()},
    }
    tags = {
        "cutoff": day_of(cutoff).isoformat(),
        "fingerprint": fp,
        "promoted": str(promoted).lower(),
        "champion_before": champ.version if champ else "",
    }
    params = {
        **config.gbm_params(),
        "tz": hist.tz,
        "features": ",".join(model.names),
        "series": hist.n_series,
    }
    run_id = registry.log_run(f"gbm {day_of(cutoff)}", params, metrics, tags, model)
    return registry.register(
        run_id,
        fp,
        cutoff,
        promoted,
        {"holdout_rmae": score, "champion_rmae": champ_score, "run": run_id},
    )


def model_for_issue(
    registry: ForecastRegistry, hist: Grid, config: ForecastConfig, fp: str
) -> Choice:
    """Train weekly (see the module doc) and return the champion as of the issue day."""
    issue = hist.end_day
    versions = registry.versions(fp)
    trained = None
    if not [v for v in versions if issue - config.refit_days < v.cutoff <= issue]:
        trained = train_and_register(registry, hist, config, fp, versions)
        if trained is not None:
            versions = registry.versions(fp)
    chosen = champion_as_of(versions, issue)
    if chosen is None:
        return Choice(None, None, trained)
    return Choice(chosen, registry.load(chosen), trained)

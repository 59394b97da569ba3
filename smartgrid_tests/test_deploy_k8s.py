"""The Kubernetes deploy: every manifest of deploy/k8s validates against the Kubernetes schemas
bundled with kubernetes-validate (offline, strict); deploy/helm/values.yaml uses the keys the
official Dagster chart expects, with Kubernetes-typed values that validate, and agrees with
deploy/dagster.yaml, deploy/workspace.yaml, the Secrets and the settings module; the run pod the
K8sRunLauncher of deploy/dagster.yaml builds is a valid Job; and the NetworkPolicies let the
Dagster pods, and nothing else, reach PostgreSQL, MinIO and MLflow."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from smartgrid_tests.test_deploy_compose import env_references, settings_variables

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.32"  # the oldest Kubernetes minor the manifests are written for
NAMESPACE = "smartgrid"
DATA_CLIENT = {"smartgrid.io/data-client": "true"}

# Keys of the official chart's values (its values.schema.json is generated from these models;
# every model forbids extra keys). A nested dict lists the keys of a mapping, K8S:<Type> is a
# Kubernetes type validated against the bundled schemas, ANY a free-form value.
ANY = "any"
IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": ANY}
ENV_SOURCES = {"envConfigMaps": "K8S:ConfigMapEnvSource[]", "envSecrets": "K8S:SecretEnvSource[]"}
POD = {
    "nodeSelector": ANY,
    "affinity": "K8S:Affinity",
    "tolerations": ANY,
    "podSecurityContext": "K8S:PodSecurityContext",
    "securityContext": "K8S:SecurityContext",
    "resources": "K8S:ResourceRequirements",
    "annotations": ANY,
    "labels": "LABELS",
    "schedulerName": ANY,
    "volumeMounts": "K8S:VolumeMount[]",
    "volumes": "K8S:Volume[]",
    "livenessProbe": ANY,
    "readinessProbe": ANY,
    "startupProbe": ANY,
}
TAG_LIMIT = {"key": ANY, "value": ANY, "limit": ANY}
CHART = {
    "nameOverride": ANY,
    "fullnameOverride": ANY,
    "rbacEnabled": ANY,
    "imagePullSecrets": ANY,
    "global": {
        "postgresqlSecretName": ANY,
        "dagsterHome": ANY,
        "serviceAccountName": ANY,
        "celeryConfigSecretName": ANY,
    },
    "generatePostgresqlPasswordSecret": ANY,
    "generateCeleryConfigSecret": ANY,
    "telemetry": {"enabled": ANY},
    "serviceAccount": {"create": ANY, "name": ANY, "annotations": ANY},
    "postgresql": {
        "enabled": ANY,
        "image": IMAGE,
        "postgresqlHost": ANY,
        "postgresqlUsername": ANY,
        "postgresqlPassword": ANY,
        "postgresqlDatabase": ANY,
        "postgresqlParams": ANY,
        "postgresqlScheme": ANY,
        "service": {"port": ANY},
    },
    "dagsterWebserver": {
        **POD,
        **ENV_SOURCES,
        "replicaCount": ANY,
        "image": IMAGE,
        "nameOverride": ANY,
        "pathPrefix": ANY,
        "service": ANY,
        "workspace": ANY,
        "env": ANY,
        "deploymentLabels": "LABELS",
        "enableReadOnly": ANY,
        "dbStatementTimeout": ANY,
        "dbPoolRecycle": ANY,
        "logLevel": ANY,
    },
    "dagsterDaemon": {
        **POD,
        **ENV_SOURCES,
        "enabled": ANY,
        "image": IMAGE,
        "runCoordinator": {
            "enabled": ANY,
            "type": ANY,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": ANY,
                    "tagConcurrencyLimits": ANY,
                    "dequeueIntervalSeconds": ANY,
                    "dequeueNumWorkers": ANY,
                    "dequeueUseThreads": ANY,
                    "blockOpConcurrencyLimitedRuns": ANY,
                },
                "customRunCoordinator": ANY,
            },
        },
        "heartbeatTolerance": ANY,
        "env": ANY,
        "deploymentLabels": "LABELS",
        "runMonitoring": {
            "enabled": ANY,
            "startTimeoutSeconds": ANY,
            "cancelTimeoutSeconds": ANY,
            "maxResumeRunAttempts": ANY,
            "pollIntervalSeconds": ANY,
            "freeSlotsAfterRunEndSeconds": ANY,
        },
        "runRetries": {"enabled": ANY, "maxRetries": ANY, "retryOnAssetOrOpFailure": ANY},
        "sensors": ANY,
        "schedules": ANY,
    },
    "concurrency": {
        "enabled": ANY,
        "pools": {"defaultLimit": ANY, "granularity": ANY, "opGranularityRunBuffer": ANY},
        "runs": {"maxConcurrentRuns": ANY, "tagConcurrencyLimits": [TAG_LIMIT]},
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": [
            {
                **POD,
                **ENV_SOURCES,
                "name": ANY,
                "image": IMAGE,
                "dagsterApiGrpcArgs": ANY,
                "codeServerArgs": ANY,
                "includeConfigInLaunchedRuns": {"enabled": ANY},
                "port": ANY,
                "env": ANY,
                "replicaCount": ANY,
            }
        ],
    },
    "runLauncher": {
        "type": ANY,
        "config": {
            "k8sRunLauncher": {
                **ENV_SOURCES,
                "image": IMAGE,
                "imagePullPolicy": ANY,
                "jobNamespace": ANY,
                "loadInclusterConfig": ANY,
                "kubeconfigFile": ANY,
                "envVars": ANY,
                "volumeMounts": "K8S:VolumeMount[]",
                "volumes": "K8S:Volume[]",
                "labels": "LABELS",
                "failPodOnRunFailure": ANY,
                "resources": "K8S:ResourceRequirements",
                "schedulerName": ANY,
                "securityContext": "K8S:SecurityContext",
                "runK8sConfig": {
                    "containerConfig": ANY,
                    "podSpecConfig": {"securityContext": "K8S:PodSecurityContext"},
                    "podTemplateSpecMetadata": ANY,
                    "jobSpecConfig": ANY,
                    "jobMetadata": ANY,
                },
            },
            "celeryK8sRunLauncher": ANY,
            "customRunLauncher": ANY,
        },
    },
    "computeLogManager": {
        "type": ANY,
        "config": {
            "s3ComputeLogManager": {
                "bucket": ANY,
                "localDir": ANY,
                "prefix": ANY,
                "useSsl": ANY,
                "verify": ANY,
                "verifyCertPath": ANY,
                "endpointUrl": ANY,
                "skipEmptyFiles": ANY,
                "uploadInterval": ANY,
                "uploadExtraArgs": ANY,
                "showUrlOnly": ANY,
                "region": ANY,
            },
            "azureBlobComputeLogManager": ANY,
            "gcsComputeLogManager": ANY,
            "customComputeLogManager": ANY,
        },
    },
    "retention": {"enabled": ANY, "schedule": ANY, "sensor": ANY, "autoMaterialize": ANY},
    "migrate": {"enabled": ANY, "extraContainers": ANY, "initContainers": ANY},
    "pythonLogs": ANY,
    "scheduler": ANY,
    "ingress": ANY,
    "busybox": ANY,
    "rabbitmq": ANY,
    "redis": ANY,
    "flower": ANY,
    "additionalInstanceConfig": ANY,
}
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


def manifests() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def named(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def instance() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def k8s_type_validator(type_name: str) -> jsonschema.Validator:
    """A validator for one Kubernetes API type (core/v1), from kubernetes-validate's bundled,
    strict schemas: nothing is downloaded."""
    version = max(
        v for v in kubernetes_validate.utils.all_versions() if v.startswith(f"{K8S_VERSION}.")
    )
    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    folder = folder / f"v{version}-local-strict"
    schema = json.loads((folder / f"{type_name.lower()}-v1.json").read_text())
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def chart_problems(value, spec, path: str = "") -> list[str]:
    """Where `value` leaves the chart's keys or its Kubernetes types."""
    problems = []
    if spec == ANY:
        return problems
    if spec == "LABELS":
        if not isinstance(value, dict):
            return [f"{path}: labels must be a mapping"]
        for k, v in value.items():
            if not (isinstance(v, str) and LABEL_KEY.match(k) and LABEL_VALUE.match(v)):
                problems.append(f"{path}.{k}: not a valid label {k}={v!r}")
        return problems
    if isinstance(spec, str) and spec.startswith("K8S:"):
        type_name = spec.removeprefix("K8S:")
        items = value if type_name.endswith("[]") else [value]
        if type_name.endswith("[]") and not isinstance(value, list):
            return [f"{path}: expected a list of {type_name[:-2]}"]
        validator = k8s_type_validator(type_name.removesuffix("[]"))
        for i, item in enumerate(items):
            problems += [f"{path}[{i}]: {e.message}" for e in validator.iter_errors(item)]
        return problems
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p for i, item in enumerate(value) for p in chart_problems(item, spec[0], f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return [f"{path}: expected a mapping"]
    for key, item in value.items():
        if key not in spec:
            problems.append(f"{path}.{key}: not a key of the Dagster chart")
        else:
            problems += chart_problems(item, spec[key], f"{path}.{key}")
    return problems


# ---------------------------------------------------------------------------- manifests


def test_manifests_validate_against_kubernetes_schemas() -> None:
    kinds = []
    for filename, doc in manifests():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            pytest.fail(
                f"{filename} {doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}"
            )
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, filename
        kinds.append(doc["kind"])
    assert {"Namespace", "ConfigMap", "Secret", "NetworkPolicy", "Deployment", "Service"} == set(
        kinds
    )

    # The validation is real: a misspelt field and a wrong type are refused.
    policy = copy.deepcopy(named("NetworkPolicy")["postgresql-ingress"])
    policy["spec"]["podSelectr"] = policy["spec"].pop("podSelector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(named("Deployment")["mlflow"])
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_secrets_are_templates_without_values() -> None:
    secrets = named("Secret")
    assert set(secrets) == {
        "smartgrid-dagster-postgresql",
        "smartgrid-s3",
        "smartgrid-warehouse",
        "smartgrid-mlflow",
        "smartgrid-alerts",
    }
    for name, secret in secrets.items():
        assert "data" not in secret, f"{name}: base64 `data` would be a committed value"
        for key, value in secret["stringData"].items():
            references = re.findall(r"\$\{[A-Z][A-Z0-9_]*\}", value)
            assert references, f"{name}.{key} must be a ${{VARIABLE}} filled in at apply time"
            password = urlsplit(value).password if "://" in value else None
            assert password is None or re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", password), key


# ---------------------------------------------------------------------------- Helm values


def test_values_use_the_keys_and_types_the_chart_expects() -> None:
    assert chart_problems(values(), CHART) == []
    # The check is real: a misspelt key, a wrong Kubernetes type and a bad label are caught.
    broken = values()
    broken["dagsterWebserver"]["enableReadonly"] = True
    broken["runLauncher"]["config"]["k8sRunLauncher"]["resources"]["limits"] = "8Gi"
    broken["dagsterDaemon"]["labels"]["smartgrid.io/data-client"] = "yes please"
    problems = chart_problems(broken, CHART)
    assert any("enableReadonly" in p for p in problems)
    assert any("k8sRunLauncher.resources" in p for p in problems)
    assert any("dagsterDaemon.labels" in p for p in problems)


def test_values_deploy_the_project_image_readonly_webserver_and_code_server() -> None:
    v = values()
    images = {
        (section["image"]["repository"], str(section["image"]["tag"]))
        for section in (
            v["dagsterWebserver"],
            v["dagsterDaemon"],
            *v["dagster-user-deployments"]["deployments"],
        )
    }
    [(repository, tag)] = images
    assert repository.rsplit("/", 1)[-1] == "smartgrid-analytics"
    mlflow = named("Deployment")["mlflow"]["spec"]["template"]["spec"]["containers"][0]
    assert mlflow["image"] == f"{repository}:{tag}"
    assert v["dagsterWebserver"]["enableReadOnly"] is True

    user = v["dagster-user-deployments"]
    assert user["enabled"] and user["enableSubchart"]
    [code] = user["deployments"]
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert (code["name"], code["port"]) == (grpc["host"], grpc["port"])
    args = code["codeServerArgs"]
    dagster = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert args[args.index("--module-name") + 1] == dagster["module_name"]
    assert args[args.index("--location-name") + 1] == grpc["location_name"]
    assert code["includeConfigInLaunchedRuns"]["enabled"] is True
    assert code["replicaCount"] >= 2

    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    resources = v["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert set(resources) == {"requests", "limits"}
    assert all(set(resources[k]) == {"cpu", "memory"} for k in resources)


def test_values_agree_with_deploy_dagster_yaml() -> None:
    v, inst = values(), instance()
    config_map = named("ConfigMap")["smartgrid-env"]["data"]

    # Storage: the same PostgreSQL, driver and database.
    pg = v["postgresql"]
    assert pg["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False
    assert pg["postgresqlPassword"] == ""
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        db = inst[section]["config"]["postgres_db"]
        assert db["scheme"] == pg["postgresqlScheme"] == "postgresql+psycopg2"
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert config_map["DAGSTER_PG_HOST"] == pg["postgresqlHost"]
    assert config_map["DAGSTER_PG_USERNAME"] == pg["postgresqlUsername"]
    assert config_map["DAGSTER_PG_DB"] == pg["postgresqlDatabase"]
    assert int(config_map["DAGSTER_PG_PORT"]) == pg["service"]["port"]

    # Queue, pools, retries, monitoring.
    daemon = v["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == inst["run_coordinator"]["class"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert (
        queued["dequeueIntervalSeconds"]
        == inst["run_coordinator"]["config"]["dequeue_interval_seconds"]
    )
    concurrency = v["concurrency"]
    assert concurrency["enabled"] is True
    assert (
        concurrency["pools"]["defaultLimit"] == inst["concurrency"]["pools"]["default_limit"] == 1
    )
    assert (
        concurrency["runs"]["maxConcurrentRuns"]
        == inst["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert (
        concurrency["runs"]["tagConcurrencyLimits"]
        == inst["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert {"key": "smartgrid/workload", "value": "forecast", "limit": 2} in concurrency["runs"][
        "tagConcurrencyLimits"
    ]
    assert "maxConcurrentRuns" not in queued and "tagConcurrencyLimits" not in queued, (
        "the chart refuses limits in both places"
    )
    assert daemon["runRetries"] == {
        "enabled": inst["run_retries"]["enabled"],
        "maxRetries": inst["run_retries"]["max_retries"],
    }
    monitoring = inst["run_monitoring"]
    assert daemon["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
    }
    assert v["telemetry"]["enabled"] is inst["telemetry"]["enabled"] is False

    # The run launcher: one pod per run with the same resources, labels, env and secrets.
    launcher = inst["run_launcher"]["config"]
    chart = v["runLauncher"]["config"]["k8sRunLauncher"]
    assert inst["run_launcher"]["class"] == v["runLauncher"]["type"]
    assert chart["resources"] == launcher["resources"]
    assert chart["labels"] == launcher["labels"]
    assert [s["name"] for s in chart["envSecrets"]] == launcher["env_secrets"]
    assert [c["name"] for c in chart["envConfigMaps"]] == launcher["env_config_maps"]
    assert chart["securityContext"] == launcher["security_context"]
    assert chart["runK8sConfig"]["podSpecConfig"] == launcher["run_k8s_config"]["pod_spec_config"]
    assert chart["failPodOnRunFailure"] is launcher["fail_pod_on_run_failure"] is True
    assert chart["imagePullPolicy"] == launcher["image_pull_policy"]
    assert v["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert v["global"]["dagsterHome"] == launcher["dagster_home"]
    assert v["serviceAccount"]["name"] == v["global"]["serviceAccountName"]
    assert v["global"]["serviceAccountName"] == launcher["service_account_name"]
    assert launcher["job_namespace"] == NAMESPACE

    # Step logs in the same bucket.
    logs = v["computeLogManager"]
    assert logs["type"] == inst["compute_logs"]["class"] == "S3ComputeLogManager"
    assert inst["compute_logs"]["config"]["bucket"] == {"env": "DAGSTER_COMPUTE_LOG_BUCKET"}
    assert (
        logs["config"]["s3ComputeLogManager"]["bucket"] == config_map["DAGSTER_COMPUTE_LOG_BUCKET"]
    )
    assert (
        logs["config"]["s3ComputeLogManager"]["prefix"] == inst["compute_logs"]["config"]["prefix"]
    )


def _env_from(sources: dict, config_maps: dict, secrets: dict) -> set[str]:
    """The variable names a pod gets from its envConfigMaps and envSecrets."""
    names = set()
    for ref in sources.get("envConfigMaps", []):
        assert ref["name"] in config_maps, f"ConfigMap {ref['name']} is not in deploy/k8s"
        names |= set(config_maps[ref["name"]]["data"])
    for ref in sources.get("envSecrets", []):
        assert ref["name"] in secrets, f"Secret {ref['name']} is not in deploy/k8s"
        names |= set(secrets[ref["name"]]["stringData"])
    return names


def test_pods_get_every_setting_and_secret_they_need() -> None:
    v, inst = values(), instance()
    config_maps, secrets = named("ConfigMap"), named("Secret")
    assert "postgresql-password" in secrets[v["global"]["postgresqlSecretName"]]["stringData"]
    # DAGSTER_HOME is set by the chart (global.dagsterHome) and the launcher (dagster_home).
    needed = settings_variables() - {"AWS_DEFAULT_REGION", "DAGSTER_HOME"}
    [code] = v["dagster-user-deployments"]["deployments"]
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    code_env = _env_from(code, config_maps, secrets)
    run_env = _env_from(launcher, config_maps, secrets) | code_env  # includeConfigInLaunchedRuns
    assert not (needed - code_env), f"the code server lacks {needed - code_env}"
    assert not (needed - run_env), f"run pods lack {needed - run_env}"
    # deploy/dagster.yaml outside Helm: its variables, in run pods, with the password from the
    # launcher's postgres_password_secret.
    outside = _env_from(launcher, config_maps, secrets) | {"DAGSTER_PG_PASSWORD"}
    assert not (env_references(inst) - outside), env_references(inst) - outside
    optional = [s for s in code["envSecrets"] if s.get("optional")]
    assert [s["name"] for s in optional] == ["smartgrid-alerts"], "only alerts may be absent"
    # Webserver and daemon read step logs from S3 and the instance from PostgreSQL.
    for section in (v["dagsterWebserver"], v["dagsterDaemon"]):
        env = _env_from(section, config_maps, secrets)
        assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env

    # Where the ConfigMap points: the in-cluster services of MinIO and MLflow.
    data = config_maps["smartgrid-env"]["data"]
    mlflow = named("Service")["mlflow"]
    tracking = urlsplit(data["MLFLOW_TRACKING_URI"])
    assert tracking.hostname == f"mlflow.{NAMESPACE}.svc"
    assert tracking.port == mlflow["spec"]["ports"][0]["port"]
    assert urlsplit(data["AWS_ENDPOINT_URL"]).port == 9000
    allowed = named("Deployment")["mlflow"]["spec"]["template"]["spec"]["containers"][0]["env"]
    hosts = next(e["value"] for e in allowed if e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS")
    assert tracking.netloc in hosts.split(",")


# ---------------------------------------------------------------------------- the run pod


def test_run_pod_built_by_the_k8s_run_launcher_is_a_valid_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dagster-k8s's own code builds the Job of a run from deploy/dagster.yaml's launcher config;
    the Job validates, and its pod has the requests and limits, the labels the NetworkPolicies
    admit, the settings, the secrets and the PostgreSQL password from its Secret."""
    import dagster_k8s.launcher
    from dagster._config import process_config
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job
    from kubernetes.client import ApiClient

    monkeypatch.setattr(dagster_k8s.launcher, "load_kubernetes_config", lambda **_: None)
    config = instance()["run_launcher"]["config"]
    processed = process_config(dagster_k8s.launcher.K8sRunLauncher.config_type(), config)
    assert processed.success, processed.errors
    launcher = dagster_k8s.launcher.K8sRunLauncher(**processed.value)
    run = DagsterRun(job_name="daily_job", run_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
    image = "registry.example.com/smartgrid/smartgrid-analytics:0.1.0"
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0f1e2d3c",
        pod_name="dagster-run-0f1e2d3c",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": "daily_job", "dagster/run-id": run.run_id},
    )
    manifest = ApiClient().sanitize_for_serialization(job)
    manifest["metadata"]["namespace"] = context.namespace
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)

    assert context.namespace == NAMESPACE
    pod = manifest["spec"]["template"]
    assert DATA_CLIENT.items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["serviceAccountName"] == config["service_account_name"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    assert container["image"] == image
    assert container["resources"] == config["resources"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    sources = container["envFrom"]
    assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} == set(
        config["env_config_maps"]
    )
    assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} == set(
        config["env_secrets"]
    )
    [password] = [e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": config["postgres_password_secret"],
        "key": "postgresql-password",
    }
    assert config["postgres_password_secret"] in named("Secret")
    [home] = [e for e in container["env"] if e["name"] == "DAGSTER_HOME"]
    assert home["value"] == config["dagster_home"]


# ---------------------------------------------------------------------------- NetworkPolicies


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if selector.get("matchLabels", {}).items() - labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, vals = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in vals:
            return False
        if operator == "NotIn" and labels.get(key) in vals:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def reachable(policies: list[dict], client: dict[str, str], server: dict[str, str], port: int):
    """Whether a pod with `client` labels may open `port` on a pod with `server` labels, both in
    the namespace (Kubernetes semantics: a pod selected by any Ingress policy is isolated, and
    then only what some policy's rule allows gets in)."""
    selecting = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], server)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if set(peer) == {"podSelector"} and _selects(peer["podSelector"], client):
                    return True
    return False


def test_network_policies_admit_the_dagster_pods_and_nothing_else() -> None:
    policies = list(named("NetworkPolicy").values())
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule open to every pod"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, "no namespace- or IP-wide peers"

    v = values()
    mlflow_pod = named("Deployment")["mlflow"]["spec"]["template"]["metadata"]["labels"]
    backends = {
        "postgresql": ({"app.kubernetes.io/name": "postgresql"}, 5432),
        "minio": ({"app.kubernetes.io/name": "minio"}, 9000),
        "mlflow": (mlflow_pod, 5000),
    }
    chart_component = "component"  # the label the chart puts on its own pods
    dagster_pods = {
        "webserver": {chart_component: "dagster-webserver", **v["dagsterWebserver"]["labels"]},
        "read-only webserver": {
            chart_component: "dagster-webserver-read-only",
            **v["dagsterWebserver"]["labels"],
        },
        "daemon": {chart_component: "dagster-daemon", **v["dagsterDaemon"]["labels"]},
        "code server": {
            chart_component: "user-deployments",
            **v["dagster-user-deployments"]["deployments"][0]["labels"],
        },
        "run pod": {
            "app.kubernetes.io/component": "run_worker",
            **instance()["run_launcher"]["config"]["labels"],
        },
    }
    assert (
        v["runLauncher"]["config"]["k8sRunLauncher"]["labels"]
        == (instance()["run_launcher"]["config"]["labels"])
    )
    for backend, (server, port) in backends.items():
        assert any(_selects(p["spec"]["podSelector"], server) for p in policies), backend
        for pod, labels in dagster_pods.items():
            assert reachable(policies, labels, server, port), f"{pod} cannot reach {backend}"
        strangers = {
            "another app": {"app": "wordpress"},
            "a chart pod without the label": {chart_component: "dagster-webserver"},
            "a label with another value": {"smartgrid.io/data-client": "false"},
        }
        for stranger, labels in strangers.items():
            assert not reachable(policies, labels, server, port), f"{stranger} reaches {backend}"
        # Nothing reaches another port of the backend either (e.g. the MinIO console).
        assert not reachable(policies, dagster_pods["run pod"], server, port + 1), backend
    # MLflow's own backend.
    for backend in ("postgresql", "minio"):
        server, port = backends[backend]
        assert reachable(policies, mlflow_pod, server, port), f"mlflow cannot reach {backend}"
    # An unprotected pod (the code server) is reachable: the evaluator does isolate by policy.
    assert reachable(policies, {"app": "wordpress"}, dagster_pods["code server"], 4000)

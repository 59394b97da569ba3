"""The container deploy: deploy/docker-compose.yml is valid for `docker-compose config` and agrees
with deploy/dagster.yaml, deploy/workspace.yaml, the Postgres and MinIO set-up and the settings
module; deploy/Dockerfile builds the image as described (slim base, non-root, pinned
dependencies, dbt manifest at build time, nothing secret, nothing from outside its allowlist)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from smartgrid_assets.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DAGSTER_SERVICES = (
    "smartgrid-code",
    "dagster-webserver",
    "dagster-webserver-readonly",
    "dagster-daemon",
)
SERVICES = {"postgres", "minio", "minio-init", "mlflow", *DAGSTER_SERVICES}
ONE_SHOT = {"minio-init"}
# Read by settings.py but not needed in production: an alias of AWS_REGION.
SETTINGS_NOT_NEEDED = {"AWS_DEFAULT_REGION"}

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution (${X}, ${X:-default}, ${X:?error}, $$), recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, current = match.group("op"), match.group("arg") or "", env.get(name)
        if op in (":?", "?") and not current:
            raise KeyError(f"{name}: {arg}")
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose() -> dict:
    """The compose file as docker-compose resolves it with deploy/.env.example."""
    return interpolate(raw_compose(), read_env_file(ENV_EXAMPLE))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def option(cmd: list[str], name: str) -> str:
    assert name in cmd, f"{name} not in {cmd}"
    return cmd[cmd.index(name) + 1]


def env_references(node) -> set[str]:
    """Every `{env: NAME}` of a Dagster config."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(env_references(v) for v in node))
    return set()


def settings_variables() -> set[str]:
    """Every environment variable smartgrid_assets/settings.py reads (its `get("NAME")` calls)."""
    tree = ast.parse((ROOT / "smartgrid_assets" / "settings.py").read_text())
    names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert {"SMARTGRID_HOME", "SMARTGRID_WAREHOUSE_URL", "AWS_ENDPOINT_URL"} <= names
    return names


def pyproject_dagster() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]


def healthcheck_test(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, list) else ["CMD-SHELL", test]


# ---------------------------------------------------------------------------- docker-compose


def _docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    # A clean environment: only the env file decides the variables.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_docker_compose_config_accepts_the_file() -> None:
    result = _docker_compose("config", "-q", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(_docker_compose("config", env_file=ENV_EXAMPLE).stdout)
    assert set(resolved["services"]) == SERVICES
    ours = compose()["services"]
    for name in SERVICES:
        assert environment(resolved["services"][name]) == environment(ours[name]), name


def test_docker_compose_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _docker_compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "set " in result.stderr and "deploy/.env" in result.stderr, result.stderr


# ---------------------------------------------------------------------------- compose structure


def test_services_have_healthchecks_and_wait_for_what_they_need() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert healthcheck_test(service)[0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name

    def waits_for(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name].get("depends_on", {}).items()}

    assert waits_for("minio-init") == {"minio": "service_healthy"}
    assert waits_for("mlflow") == {
        "postgres": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    assert waits_for("smartgrid-code") == {
        "postgres": "service_healthy",
        "minio-init": "service_completed_successfully",
        "mlflow": "service_healthy",
    }
    for name in ("dagster-webserver", "dagster-webserver-readonly", "dagster-daemon"):
        assert waits_for(name) == {
            "postgres": "service_healthy",
            "smartgrid-code": "service_healthy",
        }
    assert "--read-only" in command(services["dagster-webserver-readonly"])
    assert "--read-only" not in command(services["dagster-webserver"])


def test_workspace_grpc_endpoint_is_the_code_server() -> None:
    services = compose()["services"]
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    grpc = entry["grpc_server"]
    code = services[grpc["host"]]
    cmd = command(code)
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert int(option(cmd, "--port")) == grpc["port"]
    assert str(grpc["port"]) in code["expose"]
    assert option(cmd, "--host") == "0.0.0.0"
    health = healthcheck_test(code)
    assert "grpc-health-check" in health and health[health.index("--port") + 1] == str(grpc["port"])
    assert option(cmd, "--module-name") == pyproject_dagster()["module_name"]
    assert option(cmd, "--location-name") == grpc["location_name"]
    assert grpc["location_name"] == pyproject_dagster()["code_location_name"]

    for name in ("dagster-webserver", "dagster-webserver-readonly", "dagster-daemon"):
        path = option(command(services[name]), "--workspace")
        assert f"./workspace.yaml:{path}:ro" in services[name]["volumes"], name


def test_instance_is_deploy_dagster_yaml_with_the_default_launcher() -> None:
    production = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    local = yaml.safe_load((DEPLOY / "dagster.compose.yaml").read_text())
    assert production["run_launcher"]["class"] == "K8sRunLauncher"
    assert local.pop("run_launcher") == {
        "module": "dagster._core.launcher",
        "class": "DefaultRunLauncher",
    }
    production.pop("run_launcher")
    assert local == production, "deploy/dagster.compose.yaml drifted from deploy/dagster.yaml"

    services = compose()["services"]
    for name in DAGSTER_SERVICES:
        home = environment(services[name])["DAGSTER_HOME"]
        mount = f"./dagster.compose.yaml:{home}/dagster.yaml:ro"
        assert mount in services[name]["volumes"], name


def test_environment_serves_the_instance_and_the_settings() -> None:
    services = compose()["services"]
    instance = yaml.safe_load((DEPLOY / "dagster.compose.yaml").read_text())
    instance_vars = env_references(instance)
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_COMPUTE_LOG_BUCKET"} <= instance_vars
    needed = settings_variables() - SETTINGS_NOT_NEEDED
    for name in DAGSTER_SERVICES:
        env = environment(services[name])
        assert not (missing := instance_vars - set(env)), f"{name} lacks {missing}"
        assert all(env[v] for v in instance_vars), name
        assert not (missing := needed - set(env)), f"{name} lacks settings {missing}"
        settings = load_settings(env)  # the values are ones the product accepts
        assert settings.landing_url.startswith("s3://") and settings.lake_url.startswith("s3://")
        assert env["DO_NOT_TRACK"] == "1" and env["DAGSTER_DISABLE_TELEMETRY"] == "1"
    assert all(
        environment(services[n]) == environment(services["smartgrid-code"])
        for n in DAGSTER_SERVICES
    ), "code server, webservers and daemon read the same settings"
    env = environment(services["smartgrid-code"])
    raw_env = raw_compose()["x-smartgrid-env"]

    # PostgreSQL: the service, its port, the role and database the init script creates, and the
    # password the postgres service hands to that script.
    postgres = services["postgres"]
    assert env["DAGSTER_PG_HOST"] == "postgres"
    assert any(p.endswith(f":{env['DAGSTER_PG_PORT']}") for p in postgres["ports"])
    assert env["DAGSTER_PG_PASSWORD"] == environment(postgres)["DAGSTER_PG_PASSWORD"]
    assert raw_env["DAGSTER_PG_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?")
    init = (DEPLOY / "postgres" / "init-databases.sh").read_text()
    assert f"CREATE ROLE {env['DAGSTER_PG_USERNAME']} LOGIN PASSWORD :'dagster_password'" in init
    assert f"CREATE DATABASE {env['DAGSTER_PG_DB']} OWNER {env['DAGSTER_PG_USERNAME']}" in init
    assert '-v dagster_password="$DAGSTER_PG_PASSWORD"' in init
    assert "./postgres/init-databases.sh:/docker-entrypoint-initdb.d/" in postgres["volumes"][1]

    # The warehouse: the PostgreSQL database the init script creates, its owner's password, and
    # the read-only role the marts are granted to.
    warehouse = urlsplit(env["SMARTGRID_WAREHOUSE_URL"])
    assert (warehouse.hostname, warehouse.port) == ("postgres", 5432)
    db, owner = warehouse.path.lstrip("/"), warehouse.username
    assert f"CREATE DATABASE {db} OWNER {owner}" in init
    assert f"CREATE ROLE {owner} LOGIN PASSWORD :'warehouse_password'" in init
    assert warehouse.password == environment(postgres)["WAREHOUSE_DB_PASSWORD"]
    assert '-v warehouse_password="$WAREHOUSE_DB_PASSWORD"' in init
    assert f"CREATE ROLE {env['SMARTGRID_ANALYST_ROLE']} NOLOGIN" in init
    assert f"GRANT CONNECT ON DATABASE {db} TO {env['SMARTGRID_ANALYST_ROLE']}" in init

    # MinIO: the endpoint, the buckets the one-shot creates, the policy, the application's key.
    minio, init_s3 = services["minio"], services["minio-init"]
    endpoint = urlsplit(env["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == "minio" and any(
        p.endswith(f":{endpoint.port}") for p in minio["ports"]
    )
    buckets = set(environment(init_s3)["BUCKETS"].split())
    used = {
        urlsplit(env["SMARTGRID_LANDING_URL"]).netloc,
        urlsplit(env["SMARTGRID_LAKE_URL"]).netloc,
        env["DAGSTER_COMPUTE_LOG_BUCKET"],
        urlsplit(environment(services["mlflow"])["MLFLOW_ARTIFACTS_DESTINATION"]).netloc,
    }
    assert used == buckets
    policy = json.loads((DEPLOY / "minio" / "smartgrid-policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert {f"arn:aws:s3:::{b}" for b in buckets} | {f"arn:aws:s3:::{b}/*" for b in buckets} == (
        resources
    )
    assert "./minio/smartgrid-policy.json:/etc/smartgrid/policy.json:ro" in init_s3["volumes"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        environment(init_s3)["SMARTGRID_S3_ACCESS_KEY"],
        environment(init_s3)["SMARTGRID_S3_SECRET_KEY"],
    ), "the application uses the key minio-init creates"
    assert env["AWS_ACCESS_KEY_ID"] != environment(minio)["MINIO_ROOT_USER"], "not the root key"

    # MLflow: the tracking URI is the mlflow service, its port and health endpoint; its backend is
    # the mlflow database with the password the postgres service gives the mlflow role.
    mlflow = services["mlflow"]
    tracking = urlsplit(env["MLFLOW_TRACKING_URI"])
    mlflow_env = environment(mlflow)
    assert tracking.hostname == "mlflow" and str(tracking.port) == mlflow_env["MLFLOW_PORT"]
    assert f"http://127.0.0.1:{tracking.port}/health" in " ".join(healthcheck_test(mlflow))
    backend = urlsplit(mlflow_env["MLFLOW_BACKEND_STORE_URI"])
    assert (backend.hostname, backend.port, backend.path) == ("postgres", 5432, "/mlflow")
    assert backend.password == environment(postgres)["MLFLOW_DB_PASSWORD"]
    assert "CREATE DATABASE mlflow OWNER mlflow" in init
    assert tracking.netloc in mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")


def test_ports_volumes_and_mounts() -> None:
    document = compose()
    declared = set(document["volumes"])
    used = set()
    for name, service in document["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"
            else:
                used.add(source)
    assert used == declared


def test_compose_and_env_example_hold_no_credentials() -> None:
    raw = raw_compose()
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):\?", COMPOSE.read_text()))
    assert {"POSTGRES_PASSWORD", "DAGSTER_PG_PASSWORD", "MINIO_ROOT_PASSWORD"} <= required
    example = read_env_file(ENV_EXAMPLE)
    assert required <= set(example), "deploy/.env.example lists every required variable"
    secret_name = re.compile(r"PASSWORD|SECRET|ACCESS_KEY")
    url_password = re.compile(r"://[^/:@\s]+:([^@\s]*)@")
    sections = [
        raw["x-smartgrid-env"],
        *(s.get("environment", {}) for s in raw["services"].values()),
    ]
    for env in sections:
        for name, value in env.items():
            if secret_name.search(name):
                assert str(value).startswith("${"), f"{name} must come from deploy/.env"
            for password in url_password.findall(str(value)):
                assert password.startswith("${"), f"{name}: a URL's password from deploy/.env"
    for name, value in example.items():
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY", name):
            assert value.startswith("change-me"), f"{name} in .env.example must be a placeholder"
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in gitignore


# ---------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` and `?` within a path segment, `**` across."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_allows(path: str) -> bool:
    """Whether deploy/Dockerfile.dockerignore lets `path` into the build context: the last
    matching pattern wins, a pattern matching a directory covers its contents, `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    allowed = True
    for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        regex = _glob_regex(line.removeprefix("!").rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            allowed = line.startswith("!")
    return allowed


def test_dockerfile_is_slim_non_root_pinned_and_secret_free() -> None:
    steps = dockerfile_instructions()
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    bases = [
        a.split()[0].replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
        for k, a in steps
        if k == "FROM"
    ]
    assert bases and all(b == "python:3.11-slim" for b in bases), bases
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    [user] = [a for k, a in final if k == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "runs as a numeric non-root user"
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert "-r /src/requirements.lock" in runs and "--no-deps /src" in runs
    # The dbt manifest is prepared at build time with the Makefile's own command.
    make = re.search(
        r"^dbt-parse:.*\n\tcd dbt_project && \.\./\$\(BIN\)/(.+)$",
        (ROOT / "Makefile").read_text(),
        re.M,
    )
    assert make, "Makefile dbt-parse target"
    assert "cd /opt/dagster/app/dbt_project" in runs and f"/opt/venv/bin/{make.group(1)}" in runs
    assert "test -s target/manifest.json" in runs
    for kind, arguments in steps:
        if kind in ("ENV", "ARG"):
            assert not re.search(r"(?i)password|secret|token|access_key", arguments), arguments
        if kind == "COPY" and "--from=" not in arguments:
            sources = [a for a in arguments.split()[:-1] if not a.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert dockerignore_allows(source), f"{source} is outside the build context"
    env = " ".join(a for k, a in final if k == "ENV")
    for flag in ("DO_NOT_TRACK=1", "DAGSTER_DISABLE_TELEMETRY=1", "MLFLOW_DISABLE_TELEMETRY=true"):
        assert flag in env
    cmd = json.loads(next(a for k, a in final if k == "CMD"))
    assert option(cmd, "--module-name") == pyproject_dagster()["module_name"]
    # What must never reach the image, and what must.
    for path in (
        "deploy/.env",
        ".venv/bin/python",
        "data/warehouse.duckdb",
        ".git/config",
        ".dagster_home/dagster.yaml",
        "dbt_project/target/manifest.json",
    ):
        assert not dockerignore_allows(path), path
    for path in (
        "requirements.lock",
        "smartgrid_assets/settings.py",
        "dbt_project/dbt_project.yml",
    ):
        assert dockerignore_allows(path), path
    image_workspace = next(a.split()[-1] for k, a in final if k == "COPY" and "workspace.yaml" in a)
    served = option(command(compose()["services"]["dagster-webserver"]), "--workspace")
    assert image_workspace == served


def test_dbt_manifest_builds_without_runtime_settings(tmp_path: Path) -> None:
    """The build step `dbt parse` in a copy of dbt_project, with none of the product's variables
    set (as in `docker build`): it must leave target/manifest.json."""
    project = tmp_path / "dbt_project"
    shutil.copytree(
        ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTGRID_", "DBT_"))}
    env |= {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [str(dbt), "parse", "--quiet", "--profiles-dir", "."],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    assert any(key.startswith("model.smartgrid.") for key in manifest["nodes"])

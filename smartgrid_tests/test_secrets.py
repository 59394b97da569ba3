"""No credential in code or committed configuration: a scan of the repository's files (tracked,
and untracked but not ignored: what the next commit could take) for credential-looking strings,
with an explicit allowlist for examples; and the scan itself, tested on a copy of the repository
with fake secrets planted in it.

Credentials belong in environment variables (smartgrid_assets/settings.py), Dagster `EnvVar` /
`{env: NAME}` config, compose `${NAME}` interpolation and Kubernetes Secrets (`secretKeyRef`,
`envFrom`, deploy/k8s/secrets.template.yaml).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 5_000_000

# Explicit allowlist: (file glob, whole value) pairs that are known examples, not credentials.
ALLOWLIST: list[tuple[str, re.Pattern[str]]] = [
    # Placeholders that a real deploy must replace (the compose stack refuses to start without
    # deploy/.env, which is git-ignored).
    ("deploy/.env.example", re.compile(r"change-me[\w-]*")),
    # The tests' dummy S3 credentials for the moto server on loopback.
    ("smartgrid_tests/*", re.compile(r"testing")),
    # `smartgrid bench`'s dummy credentials for its own moto server on loopback.
    ("smartgrid_assets/bench.py", re.compile(r"bench")),
    # The word "password" standing for one in documentation's connection URLs.
    ("*.md", re.compile(r"password")),
    # The PostgreSQL warehouse tests' dummy passwords (an unreachable port, a URL-parsing case).
    ("smartgrid_tests/test_postgres_warehouse.py", re.compile(r"s3cret|p%40ss")),
]

# High-confidence shapes, wherever they appear.
TOKEN_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    ("private-key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_\w{36,}|github_pat_\w{40,})\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("slack-webhook", re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/\w+")),
]

# user:password@ in a URL; the password group is judged by _is_literal.
URL_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"`<>]+:(?P<value>[^@\s/'\"`]+)@")

# `password: x`, `SECRET_KEY = "x"`, `"token": "x"`, `API_KEY=x` ...
CREDENTIAL_KEY = (
    r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?)[A-Za-z0-9_.-]*"
)
ASSIGNMENT = re.compile(
    rf"(?i)(?P<key>{CREDENTIAL_KEY})[\"']?\s*(?P<sep>:=|=>|:|=)(?P<space>\s*)(?P<value>.*)$"
)
# psql's variable interpolation: PASSWORD :'name' (the value comes from `psql -v name=...`).
PSQL_VARIABLE = re.compile(r"^'[A-Za-z_]\w*'")
# Keys that name where a credential is, not the credential: a Secret's name, a variable, a file.
KEY_IS_A_NAME = re.compile(
    r"(?i)(password_?secret|secret_?name|secret_?ref|key_?ref|secrets|name|names|env|envvar|var"
    r"|vars|file|path|dir|arn|endpoint|ttl|timeout|expiry|expires|length|type|kind)$"
)
# Values that refer to a credential instead of holding one.
REFERENCE = re.compile(
    r"""^(?:
        \$\{[^}]*\}            # ${VAR}, ${VAR:?msg}: shell / compose / envsubst
      | \$[A-Za-z_]\w*         # $VAR
      | \{\{.*\}\}             # Helm / Jinja template
      | \{\s*env\s*:           # Dagster {env: NAME}
      | env\s*:                # Dagster env: NAME
      | <[^>]*>                # <password>: documentation placeholder
      | [A-Za-z_][\w.]*\s*[(\[]  # EnvVar("NAME"), os.environ["NAME"], settings.get(...)
      | \*+ | \.\.\.+ | x{3,}  # masked
    )""",
    re.VERBOSE | re.IGNORECASE,
)
CODE_SUFFIXES = {".py", ".pyi", ".js", ".ts", ".go", ".rs", ".java", ".sql"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.excerpt}"


def repository_files(root: Path) -> list[str]:
    """Tracked files, and untracked files that are not ignored (relative POSIX paths)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({p for p in listing.split("\0") if p and (root / p).is_file()})


def _allowed(path: str, value: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) and allowed.fullmatch(value)
        for pattern, allowed in ALLOWLIST
    )


def _unquote(raw: str, code: bool) -> str | None:
    """The literal value of an assignment's right-hand side; None when it is not a literal
    (code: anything but a string literal; config: an empty value, a mapping or a list)."""
    raw = raw.strip().rstrip(",;")
    match = re.match(r"""^[rbfRBF]?(?P<q>["'])(?P<s>.*?)(?P=q)""", raw)
    if match:
        return match.group("s")
    if code:
        return None
    raw = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    if not raw or raw[0] in "{[|>&*!":
        return None
    return raw


def _is_literal(value: str) -> bool:
    """A value that holds a credential, as opposed to a reference, a placeholder or a flag."""
    value = value.strip()
    if len(value) < 4 or REFERENCE.match(value):
        return False
    if value.lower() in {"true", "false", "null", "none", "~", "optional", "required"}:
        return False
    # Prose, expressions and names of environment variables are not credentials.
    return not (" " in value or re.fullmatch(r"[A-Z][A-Z0-9_]*", value))


def scan_text(path: str, text: str) -> list[Finding]:
    findings = []
    code = Path(path).suffix in CODE_SUFFIXES
    for number, line in enumerate(text.splitlines(), start=1):
        excerpt = line.strip()[:120]
        for rule, pattern in TOKEN_RULES:
            if pattern.search(line):
                findings.append(Finding(path, number, rule, excerpt))
        for match in URL_PASSWORD.finditer(line):
            value = match.group("value")
            if _is_literal(value) and not _allowed(path, value):
                findings.append(Finding(path, number, "password-in-url", excerpt))
        match = ASSIGNMENT.search(line)
        psql_variable = (
            match is not None
            and match.group("sep") == ":"
            and not match.group("space")
            and PSQL_VARIABLE.match(match.group("value"))
        )
        if match and not psql_variable and not KEY_IS_A_NAME.search(match.group("key")):
            value = _unquote(match.group("value"), code)
            if (
                value is not None
                and _is_literal(value)
                and not _allowed(path, value)
                and not URL_PASSWORD.search(value)  # judged by the URL rule above
            ):
                findings.append(Finding(path, number, "credential-assignment", excerpt))
    return findings


def scan_repository(root: Path) -> list[Finding]:
    findings = []
    for relative in repository_files(root):
        data = (root / relative).read_bytes()
        if len(data) > MAX_BYTES or b"\0" in data[:8192]:
            continue
        findings.extend(scan_text(relative, data.decode("utf-8", errors="replace")))
    return findings


def test_repository_has_no_credentials() -> None:
    files = repository_files(ROOT)
    assert "smartgrid_assets/settings.py" in files and "deploy/docker-compose.yml" in files
    findings = scan_repository(ROOT)
    assert not findings, "credential-looking strings:\n" + "\n".join(map(str, findings))


def _fake(*parts: str) -> str:
    """Builds a fake secret at run time, so this file's own source holds none."""
    return "".join(parts)


PLANTED = {
    # file in the copy -> text appended to it (or a new file), and the rule that must fire
    "smartgrid_assets/settings.py": (
        _fake("\n_KEY_ID = '", "AKIA", "Z7QX3M2R5TB4VW6Y", "'\n"),
        "aws-access-key-id",
    ),
    "deploy/k8s/tls.pem": (
        _fake(
            "-----BEGIN ",
            "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVA",
            "TE KEY-----\n",
        ),
        "private-key",
    ),
    "deploy/docker-compose.yml": (
        _fake("\n# SMARTGRID_WAREHOUSE_URL: postgresql://smartgrid:", "Xk9pQ2mV", "@db:5432/wh\n"),
        "password-in-url",
    ),
    "deploy/helm/values.yaml": (
        _fake("\nextraSettings:\n  smtpPass", "word: ", "hunter2-prod\n"),
        "credential-assignment",
    ),
    "smartgrid_assets/alerts_config.py": (
        _fake("SMTP_PASS", "WORD = ", '"s3cr3t-Value"\n'),
        "credential-assignment",
    ),
    "dagster.yaml": (
        _fake(
            "\nsecrets:\n  aws_secret_", "access_key: ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYZ9X4mPq2L\n"
        ),
        "credential-assignment",
    ),
    "pyproject.toml": (
        _fake("\n[tool.smartgrid.oauth]\nclient_sec", 'ret = "9f8e7d6c5b4a3210"\n'),
        "credential-assignment",
    ),
    # An allowlisted value outside its file is still a finding.
    "deploy/k8s/configmap.yaml": (
        _fake("\n  DB_PASS", "WORD: change-me-later\n"),
        "credential-assignment",
    ),
}

# Shapes that refer to credentials: none of them may be reported.
CONFIG_REFERENCES = [
    _fake("pass", "word:\n  env: DAGSTER_PG_PASSWORD"),
    _fake("POSTGRES_PASS", "WORD: ${POSTGRES_PASSWORD:?set it}"),
    _fake("uri: postgresql://mlflow:${MLFLOW_DB_PASS", "WORD}@postgres:5432/mlflow"),
    _fake("postgres_pass", "word_secret: smartgrid-dagster-postgresql"),
    _fake("- name: AWS_SECRET_", "ACCESS_KEY\n  valueFrom:\n    secretKeyRef: {name: s3, key: k}"),
    _fake("url: https://user:<pass", "word>@example.com"),
    _fake("CREATE ROLE app LOGIN PASS", "WORD :'app_password';"),
]
CODE_REFERENCES = [
    _fake("pass", "word = dg.EnvVar('SMARTGRID_DB_PASS", "WORD')"),
    _fake("sec", "ret = os.environ['SMARTGRID_TOKEN']"),
    _fake("api_", "key = settings.alert_api_key"),
    _fake("conn = connect(pass", "word=pass", "word)"),
]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repository's scanned files, copied into a fresh git work tree (nothing committed)."""
    copy = tmp_path / "repo"
    for relative in repository_files(ROOT):
        target = copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    return copy


def test_scan_finds_fake_secrets_planted_in_a_copy(repo_copy: Path) -> None:
    assert scan_repository(repo_copy) == [], "the copy starts clean, like the repository"
    for relative, (text, _) in PLANTED.items():
        path = repo_copy / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(text)
    (repo_copy / "deploy" / "references.yaml").write_text("\n".join(CONFIG_REFERENCES))
    (repo_copy / "smartgrid_assets" / "references.py").write_text("\n".join(CODE_REFERENCES))
    # Ignored files are not scanned: the real deploy/.env is git-ignored by deploy/.gitignore.
    (repo_copy / "deploy" / ".env").write_text(_fake("POSTGRES_PASS", "WORD=real-0ne-on-disk\n"))

    findings = scan_repository(repo_copy)
    found = {(f.path, f.rule) for f in findings}
    for relative, (_, rule) in PLANTED.items():
        assert (relative, rule) in found, f"planted {rule} in {relative} not found: {findings}"
    assert not [f for f in findings if "references" in f.path], findings
    assert not [f for f in findings if f.path == "deploy/.env"], "ignored files are not scanned"
    assert len(findings) == len(PLANTED), "\n".join(map(str, findings))


def test_allowlist_is_explicit_per_file() -> None:
    example = _fake("MINIO_ROOT_PASS", "WORD=change-me-minio-root")
    assert scan_text("deploy/.env.example", example) == []
    assert [f.rule for f in scan_text("deploy/.env", example)] == ["credential-assignment"]
    dummy = _fake('"AWS_SECRET_', 'ACCESS_KEY": "testing",')
    assert scan_text("smartgrid_tests/conftest.py", dummy) == []
    assert [f.rule for f in scan_text("smartgrid_assets/s3.py", dummy)] == ["credential-assignment"]

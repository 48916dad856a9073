"""docker/compose.yaml and docker/Dockerfile stay in step with the code.

Every DISTILGATE_* variable they set must be a setting with a valid value,
every command they run must parse as a `distilgate` command, and the image's
entry point and health check must match the CLI script and the /healthz route.
"""

import re
import tomllib
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from app.api.app import create_app
from app.cli.main import build_parser
from app.config import Settings
from tests.deploy.compose_spec import (
    COMPOSE_PATH,
    ROOT,
    ComposeError,
    distilgate_services,
    dockerfile_stages,
    environment_of,
    interpolate,
    load_compose,
    read_dockerfile,
)

VARIABLES = {
    "POSTGRES_PASSWORD": "compose-test-password",
    "DISTILGATE_ADMIN_TOKEN": "compose-test-admin-token-0123456789abcdef",
    "DISTILGATE_INTERNAL_TOKEN": "compose-test-internal-token-0123456789abcd",
}
PREFIX = "DISTILGATE_"
SHARED_SETTINGS = (
    "DISTILGATE_DATABASE_URL",
    "DISTILGATE_DATA_DIR",
    "DISTILGATE_EXECUTOR",
    "DISTILGATE_BROKER_URL",
    "DISTILGATE_RESULT_BACKEND",
    "DISTILGATE_INTERNAL_TOKEN",
)


def unknown_settings(environment):
    """Return the DISTILGATE_* names in ``environment`` that are not settings."""
    fields = set(Settings.model_fields)
    return sorted(
        name
        for name in environment
        if name.startswith(PREFIX) and name.removeprefix(PREFIX).lower() not in fields
    )


def settings_from(environment):
    values = {
        name.removeprefix(PREFIX).lower(): value
        for name, value in environment.items()
        if name.startswith(PREFIX)
    }
    return Settings(**values)


def parse_command(argv):
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exit_:
        raise AssertionError(
            f"{argv!r} is not a valid distilgate command (exit {exit_.code})"
        ) from None


@pytest.fixture(scope="module")
def services():
    return distilgate_services(VARIABLES)


@pytest.fixture(scope="module")
def compose():
    return load_compose()


def test_compose_runs_api_and_workers(services):
    assert set(services) == {"api", "worker"}
    assert services["worker"].replicas >= 2


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_names_only_real_settings(services, service):
    environment = services[service].environment
    assert unknown_settings(environment) == []


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_setting_values_validate(services, service):
    settings = settings_from(services[service].environment)
    assert settings.executor == "celery"
    assert urlsplit(settings.database_url).hostname == "postgres"


def test_compose_api_migrates_and_requires_tokens(services):
    settings = settings_from(services["api"].environment)
    assert settings.migrate_on_start is True
    assert settings.admin_token is not None
    assert settings.internal_token is not None


@pytest.mark.parametrize("name", SHARED_SETTINGS)
def test_compose_api_and_workers_agree(services, name):
    assert services["api"].environment[name] == services["worker"].environment[name]


def test_step_lock_catches_unknown_setting(tmp_path):
    text = COMPOSE_PATH.read_text(encoding="utf-8").replace(
        "DISTILGATE_LOG_LEVEL: INFO",
        "DISTILGATE_LOG_LEVEL: INFO\n  DISTILGATE_JOB_WORKER: '4'",
    )
    assert "DISTILGATE_JOB_WORKER" in text
    changed = tmp_path / "compose.yaml"
    changed.write_text(text, encoding="utf-8")
    specs = distilgate_services(VARIABLES, path=changed)
    assert unknown_settings(specs["worker"].environment) == ["DISTILGATE_JOB_WORKER"]


def test_step_lock_catches_invalid_value(services):
    environment = dict(services["api"].environment, DISTILGATE_EXECUTOR="celry")
    with pytest.raises(ValidationError, match="executor"):
        settings_from(environment)


def test_compose_api_serves_on_published_port(services, compose):
    args = parse_command(services["api"].argv[1:])
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    published = compose["services"]["api"]["ports"]
    container_ports = {str(port).rsplit(":", 1)[-1] for port in published}
    assert container_ports == {str(args.port)}
    # The image's health check requests DISTILGATE_PORT, so serve must use it.
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    image_port = re.search(r"DISTILGATE_PORT=(\d+)", dockerfile).group(1)
    health_port = services["api"].environment.get("DISTILGATE_PORT", image_port)
    assert args.port == int(health_port)


def test_compose_worker_command_parses(services):
    args = parse_command(services["worker"].argv[1:])
    assert args.command == "worker"


def test_compose_commands_use_image_entrypoint(services):
    for spec in services.values():
        assert spec.argv[0] == "distilgate"


def test_compose_waits_for_healthy_dependencies(compose, services):
    for spec in services.values():
        for dependency, condition in spec.depends_on.items():
            assert condition == "service_healthy", (spec.name, dependency)
            if dependency in compose["services"] and dependency not in services:
                assert "healthcheck" in compose["services"][dependency], dependency
    assert services["worker"].depends_on["api"] == "service_healthy"
    assert services["worker"].healthcheck == {"disable": True}


def test_compose_postgres_matches_database_url(compose, services):
    settings = settings_from(services["api"].environment)
    url = urlsplit(settings.database_url)
    postgres = environment_of(compose["services"]["postgres"], VARIABLES)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_compose_requires_secrets():
    with pytest.raises(ComposeError, match="POSTGRES_PASSWORD is required"):
        distilgate_services({})


def test_dockerfile_entrypoint_is_cli_script():
    dockerfile = read_dockerfile()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert dockerfile["ENTRYPOINT"] == ["distilgate"]
    assert pyproject["project"]["scripts"]["distilgate"] == "app.cli.main:main"
    assert parse_command(dockerfile["CMD"]).command == "serve"


def test_dockerfile_healthcheck_requests_healthz():
    command = " ".join(read_dockerfile()["HEALTHCHECK"])
    paths = re.findall(r"'(/[a-z/]+)'", command)
    assert paths == ["/healthz"]
    assert "/healthz" in create_app().openapi()["paths"]
    assert "DISTILGATE_PORT" in command


def test_dockerfile_port_matches_settings():
    text = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "DISTILGATE_PORT=8000" in text
    assert "EXPOSE 8000" in text
    assert Settings.model_fields["port"].default == 8000


def test_dockerfile_final_stage_has_no_compilers():
    builder, final = dockerfile_stages()
    builder_text = " ".join(argument for _, argument in builder)
    final_text = " ".join(argument for _, argument in final)
    assert "build-essential" in builder_text
    assert "apt-get" not in final_text
    assert "--no-index" in final_text
    assert ("USER", "distilgate") in final
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")


def test_dockerfile_torch_comes_from_cpu_index():
    builder_text = " ".join(argument for _, argument in dockerfile_stages()[0])
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in (
        builder_text
    )
    assert 'extras="[torch]"' in builder_text


def test_dockerignore_keeps_local_state_out():
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("*") :].count("!app") == 1
    assert "!pyproject.toml" in lines
    assert "!README.md" in lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("${MISSING:-x}", "x"),
        ("${EMPTY:-x}", "x"),
        ("${EMPTY-x}", ""),
        ("$A-$$", "1-$"),
        ("${MISSING}", ""),
    ],
)
def test_interpolate_follows_compose_rules(text, expected):
    assert interpolate(text, {"A": "1", "EMPTY": ""}) == expected


def test_interpolate_rejects_missing_required():
    with pytest.raises(ComposeError, match="NAME is required: set it"):
        interpolate("${NAME:?set it}", {})

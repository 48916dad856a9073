"""The distilgate command, run as a real process."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def cli_env(tmp_path):
    return {
        **os.environ,
        "DISTILGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DISTILGATE_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }


@pytest.fixture
def cli(cli_env, tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "app.cli.main", *map(str, args)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )

    return run


def model_args(artifacts, student="student"):
    return [
        "check",
        "model",
        "--teacher",
        artifacts["teacher"],
        "--student",
        artifacts[student],
        "--dataset",
        artifacts["digits_test_npz"],
    ]


def data_args(artifacts, subset="subset_good_csv"):
    return [
        "check",
        "data",
        "--original",
        artifacts["original_csv"],
        "--subset",
        artifacts[subset],
        "--scenario-columns",
        "ink,width",
        "--label-column",
        "label",
    ]


def test_cli_model_gate_passes_with_exit_0(cli, artifacts):
    result = cli(*model_args(artifacts))
    assert result.returncode == 0, result.stderr
    assert "model gate PASSED" in result.stdout
    assert "accuracy_loss" in result.stdout


def test_cli_model_gate_fails_with_exit_1(cli, artifacts):
    result = cli(*model_args(artifacts, student="student_tiny"), "--json")
    body = json.loads(result.stdout)
    assert result.returncode == 1
    assert body["status"] == "failed"


def test_cli_data_gates_exit_by_verdict(cli, artifacts):
    assert cli(*data_args(artifacts)).returncode == 0
    failed = cli(*data_args(artifacts, subset="subset_bad_csv"))
    assert failed.returncode == 1
    assert "scenario_coverage" in failed.stdout


def test_cli_records_to_local_database(cli, artifacts, tmp_path):
    from app.config import Settings
    from app.storage.db import Database
    from app.storage.repository import GateFilter, GateRepository

    body = json.loads(cli(*data_args(artifacts), "--project", "local", "--json").stdout)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}")
    database = Database(settings)
    with database.session() as session:
        records, _ = GateRepository(session).page(
            GateFilter(project="local"), limit=10, cursor=None
        )
        assert [record.id for record in records] == [body["id"]]
    database.dispose()


def test_cli_posts_to_server(cli, artifacts, server):
    result = cli(
        *data_args(artifacts), "--server", server.url, "--project", "remote", "--json"
    )
    body = json.loads(result.stdout)
    stored = httpx.get(f"{server.url}/api/v1/gates/{body['id']}")
    assert result.returncode == 0, result.stderr
    assert stored.json()["project"] == "remote"


def test_cli_server_bad_input_exits_2(cli, artifacts, server, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text('{"min_coverage": 95}')
    result = cli(*data_args(artifacts), "--server", server.url, "--policy", policy)
    assert result.returncode == 2
    assert "policy.min_coverage" in result.stderr
    assert "write 0.95, not 95" in result.stderr


def test_cli_unreachable_server_exits_2(cli, artifacts):
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(*data_args(artifacts), "--server", url)
    assert result.returncode == 2
    assert "cannot reach the DistilGate server" in result.stderr


def test_cli_missing_file_exits_2(cli, artifacts, tmp_path):
    args = data_args(artifacts)
    args[args.index("--subset") + 1] = tmp_path / "nope.csv"
    result = cli(*args)
    assert result.returncode == 2
    assert "--subset" in result.stderr
    assert "nope.csv" in result.stderr


def test_cli_bad_policy_file_exits_2(cli, artifacts, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text('{"max_loss": 0.1}')
    result = cli(*model_args(artifacts), "--policy", policy)
    assert result.returncode == 2
    assert "unknown policy key 'max_loss'" in result.stderr


def test_cli_usage_error_exits_2(cli):
    result = cli("check", "model", "--teacher")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_cli_unreachable_database_exits_2(cli, artifacts, monkeypatch):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    monkeypatch.setenv("DISTILGATE_DATABASE_URL", url)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *map(str, data_args(artifacts))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: OperationalError")
    assert "Traceback" not in result.stderr


def test_cli_writes_junit_markdown_and_outputs(cli, artifacts, tmp_path):
    outputs = tmp_path / "outputs.txt"
    result = cli(
        *data_args(artifacts, subset="subset_bad_csv"),
        "--junit",
        tmp_path / "r.xml",
        "--markdown",
        tmp_path / "r.md",
        "--outputs",
        outputs,
    )
    lines = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert result.returncode == 1
    assert lines["status"] == "failed"
    assert len(lines["gate-id"]) == 32
    assert "<failure" in (tmp_path / "r.xml").read_text()
    assert (tmp_path / "r.md").read_text().startswith("## DistilGate data gate: FAILED")


def test_cli_unwritable_junit_exits_2(cli, artifacts, tmp_path):
    # A folder cannot be made under a regular file, even by root.
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli(*data_args(artifacts), "--junit", blocker / "r.xml")
    assert result.returncode == 2
    assert "cannot write --junit" in result.stderr
    assert "pass a path in a writable folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_closed_stdout_still_writes_outputs(cli_env, artifacts, tmp_path):
    outputs = tmp_path / "outputs.txt"
    args = [*data_args(artifacts), "--outputs", outputs]
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", *map(str, args)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    # Closing the only reader makes every write to stdout fail, as `| head` does.
    process.stdout.close()
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=600) == 2
    assert "stdout was closed" in stderr
    assert "Traceback" not in stderr
    assert outputs.read_text().startswith("status=passed\n")


def test_cli_data_gate_shows_stage_bars(cli_env, artifacts, tmp_path):
    # rich draws bars only on a terminal. TTY_COMPATIBLE=1 makes it treat the
    # captured stderr as one.
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *map(str, data_args(artifacts))],
        env={**cli_env, "TTY_COMPATIBLE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for stage in ("clean", "near_duplicates", "coverage", "edge_cases"):
        assert stage in result.stderr


def test_cli_coverage_reports_gate_retention(cli, tmp_path):
    original = tmp_path / "original.info"
    original.write_text(
        "SF:src/cart.py\nDA:1,1\nDA:2,1\nDA:3,1\nDA:4,0\nend_of_record\n"
    )
    subset = tmp_path / "subset.xml"
    subset.write_text(
        '<coverage><packages><package name="src"><classes>'
        '<class name="cart.py" filename="src/cart.py"><lines>'
        '<line number="1" hits="1"/><line number="2" hits="0"/>'
        '<line number="3" hits="4"/><line number="4" hits="0"/>'
        "</lines></class></classes></package></packages></coverage>"
    )
    result = cli(
        "check",
        "data",
        "--original-coverage",
        original,
        "--subset-coverage",
        subset,
        "--json",
    )
    body = json.loads(result.stdout)
    checks = {check["name"]: check for check in body["checks"]}
    assert result.returncode == 1
    assert checks["line_coverage_retention"]["value"] == pytest.approx(2 / 3)
    assert checks["branch_coverage_retention"]["status"] == "skipped"
    assert body["details"]["code_coverage"]["lost_lines"] == {"src/cart.py": [2]}


def test_cli_reads_policy_from_distilgate_toml(cli, artifacts, tmp_path):
    (tmp_path / "distilgate.toml").write_text(
        '[distilgate]\nproject = "from-toml"\n\n[policy]\nmax_param_ratio = 20\n'
    )
    result = cli(*data_args(artifacts), "--json")
    body = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert body["project"] == "from-toml"
    assert body["policy"]["max_param_ratio"] == 20


def test_cli_rejects_unknown_toml_key(cli, artifacts, tmp_path):
    (tmp_path / "distilgate.toml").write_text("[distilgate]\nservr = 'x'\n")
    result = cli(*data_args(artifacts))
    assert result.returncode == 2
    assert "unknown keys ['servr']" in result.stderr


def test_cli_report_prints_server_report(cli, artifacts, server):
    body = json.loads(
        cli(*data_args(artifacts), "--server", server.url, "--json").stdout
    )
    result = cli("report", body["id"], "--server", server.url, "--format", "junit")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<?xml")


def nan_table(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("a,b\nnan,nan\nnan,nan\n")
    return path


def test_cli_inconclusive_gate_exits_3(cli, tmp_path):
    table = nan_table(tmp_path)
    result = cli("check", "data", "--original", table, "--subset", table)
    assert result.returncode == 3, result.stderr
    assert "data gate INCONCLUSIVE" in result.stdout
    assert "every row of the original is invalid" in result.stdout


def test_cli_server_inconclusive_gate_exits_3(cli, server, tmp_path):
    table = nan_table(tmp_path)
    args = ["check", "data", "--original", table, "--subset", table]
    result = cli(*args, "--server", server.url)
    assert result.returncode == 3, result.stderr
    assert "data gate INCONCLUSIVE" in result.stdout


def test_cli_wait_timeout_bounds_server_wait(cli, artifacts, server):
    result = cli(*data_args(artifacts), "--server", server.url, "--wait-timeout", 0)
    assert result.returncode == 2
    assert "after 0 s; raise --wait-timeout" in result.stderr
    assert "gate PASSED" not in result.stdout


@pytest.mark.parametrize("value", ["-5", "nan", "soon"])
def test_cli_invalid_wait_timeout_exits_2(cli, artifacts, value):
    result = cli(*data_args(artifacts), "--wait-timeout", value)
    assert result.returncode == 2
    assert f"--wait-timeout: {value!r} is not a number of seconds >= 0" in (
        result.stderr
    )


def test_cli_check_accepts_inline_policy(cli, artifacts):
    result = cli(*data_args(artifacts), "--policy", '{"min_coverage": 0.95}', "--json")
    body = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert body["policy"]["min_coverage"] == 0.95


def test_cli_check_bad_inline_policy_exits_2(cli, artifacts):
    result = cli(*data_args(artifacts), "--policy", "{min_coverage: 0.95}")
    assert result.returncode == 2
    assert "--policy '{min_coverage: 0.95}' is not valid JSON" in result.stderr


def test_cli_missing_policy_file_hints_inline_json(cli, artifacts):
    result = cli(*data_args(artifacts), "--policy", "strict.json")
    assert result.returncode == 2
    assert "--policy 'strict.json' cannot be read" in result.stderr
    assert "or the JSON object itself, such as '{\"min_coverage\": 0.9}'" in (
        result.stderr
    )

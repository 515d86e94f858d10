"""The Make/Docker workflow, tested as far as it goes without a Docker engine:
the exact commands each target runs, the compose file against the Compose
spec, the Dockerfile's pin, and Make's up-to-date logic on stamp files."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
STAGE_TARGETS = [
    "setup",
    "data",
    "import",
    "pretrain",
    "lora",
    "eval",
    "demo",
    "handoff",
    "all",
    "plan",
    "test",
    "lint",
    "clean",
    "export",
]


def make(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("RUNTIME", None)
    full_env.pop("MAKEFLAGS", None)
    proc = subprocess.run(["make", "-s", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def docker_engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def test_help_is_the_default_goal_and_lists_every_target():
    out = make().stdout
    listed = set(re.findall(r"^  ([a-z][a-z-]*) ", out, flags=re.M))
    assert set(STAGE_TARGETS) <= listed, set(STAGE_TARGETS) - listed
    for knob in ("RUNTIME", "CONFIG", "WORK_DIR", "DATA_DIR", "IMAGE", "GPUS", "EXTRA_ARGS", "FORCE"):
        assert knob in out


def test_docker_runtime_runs_each_stage_through_compose(tmp_path):
    wd = tmp_path / "w"
    out = make(
        "data", "RUNTIME=docker", "DRY_RUN=1", f"WORK_DIR={wd}", "GPUS=2", "EXTRA_ARGS=--set data.workers=4"
    ).stdout
    cmd = shlex.split(out.strip().splitlines()[-1])
    assert cmd[0] == "env"
    env = dict(a.split("=", 1) for a in cmd[1 : cmd.index("docker")])
    assert env["WORK_DIR"] == str(wd) and env["GPU_COUNT"] == "2"
    assert env["JPQWEN_IMAGE"] == "jpqwen:25.04" and env["BASE_IMAGE"] == "nvcr.io/nvidia/nemo:25.04"
    assert env["HOST_UID"] == str(os.getuid()) and env["HOST_GID"] == str(os.getgid())
    rest = cmd[cmd.index("docker") :]
    assert rest == [
        "docker",
        "compose",
        "-f",
        "compose.yaml",
        "run",
        "--rm",
        "stage",
        "python",
        "-m",
        "pipeline.data",
        "--config",
        "configs/default.yaml",
        "--set",
        "data.workers=4",
    ]


def test_local_runtime_runs_the_same_entry_in_the_venv(tmp_path):
    out = make("data", "RUNTIME=local", "DRY_RUN=1", f"WORK_DIR={tmp_path}", "FORCE=1").stdout.strip().splitlines()[-1]
    assert out.endswith(".venv/bin/python -m pipeline.data --config configs/default.yaml --force")
    assert f"WORK_DIR={tmp_path}" in out


@pytest.mark.skipif(docker_engine_answers(), reason="a Docker engine answers here, so no fallback happens")
def test_default_runtime_falls_back_to_local_and_says_so(tmp_path):
    proc = make("data", "DRY_RUN=1", f"WORK_DIR={tmp_path}")
    assert "pipeline.data" in proc.stdout and ".venv/bin/python" in proc.stdout
    assert proc.stderr.count("running natively (RUNTIME=local)") == 1


def test_gpu_stages_check_the_gpu_before_their_prerequisites(tmp_path):
    out = make("-n", "lora", "RUNTIME=docker", f"WORK_DIR={tmp_path}").stdout
    entries = re.findall(r"python -m (pipeline\.\w+)", out)
    assert entries == [
        "pipeline.doctor",
        "pipeline.data",
        "pipeline.import_model",
        "pipeline.pretrain",
        "pipeline.lora",
    ]
    assert "--require-gpu --stage lora" in out


def test_handoff_chain_runs_in_dag_order(tmp_path):
    out = make("-n", "handoff", "RUNTIME=docker", f"WORK_DIR={tmp_path}").stdout
    entries = re.findall(r"python -m pipeline\.(\w+)", out)
    assert entries == ["data", "import_model", "pretrain", "lora", "export", "eval", "handoff"]


def _stamp(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))


def test_finished_stage_is_not_rerun_until_args_change(tmp_path):
    wd = tmp_path / "w"
    make("data", "RUNTIME=docker", "DRY_RUN=1", f"WORK_DIR={wd}")  # dry runs record nothing
    assert not (wd / "stamps").exists()
    # a real invocation records the stage arguments; fake the stage's finished stamp after it
    make("-q", "data", "RUNTIME=docker", f"WORK_DIR={wd}", check=False)
    args_file = wd / "stamps" / ".make-args"
    assert args_file.read_text().strip() == "configs/default.yaml"
    past = time.time() - 60
    os.utime(args_file, (past, past))
    _stamp(wd / "stamps" / "data.json", time.time() - 1)  # finished after config and args
    assert make("-q", "data", "RUNTIME=docker", f"WORK_DIR={wd}", check=False).returncode == 0
    # new stage arguments make it out of date (Make rewrites the args file), and so does FORCE=1
    time.sleep(0.05)
    assert (
        make(
            "-q", "data", "RUNTIME=docker", f"WORK_DIR={wd}", "EXTRA_ARGS=--set data.workers=2", check=False
        ).returncode
        == 1
    )
    assert "data.workers=2" in args_file.read_text()
    _stamp(wd / "stamps" / "data.json", time.time())
    assert (
        make(
            "-q", "data", "RUNTIME=docker", f"WORK_DIR={wd}", "EXTRA_ARGS=--set data.workers=2", check=False
        ).returncode
        == 0
    )
    assert (
        make(
            "-q", "data", "RUNTIME=docker", f"WORK_DIR={wd}", "EXTRA_ARGS=--set data.workers=2", "FORCE=1", check=False
        ).returncode
        == 1
    )


def _resolved_compose(env: dict[str, str]) -> dict:
    """compose.yaml with ${VAR:-default} interpolated as Compose does, merge keys resolved,
    then parsed and validated by the Compose spec implementation (compose_spec)."""
    from compose_spec import PyCompose

    src = (REPO / "compose.yaml").read_text()
    src = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or ""), src)
    data = {k: v for k, v in yaml.safe_load(src).items() if not k.startswith("x-")}
    return PyCompose.from_yaml(yaml.safe_dump(data)).to_dict()


def test_compose_file_is_valid_and_carries_every_docker_flag(tmp_path):
    out = make("data", "RUNTIME=docker", "DRY_RUN=1", f"WORK_DIR={tmp_path}", "GPUS=2").stdout
    cmd = shlex.split(out.strip().splitlines()[-1])
    env = dict(a.split("=", 1) for a in cmd[1 : cmd.index("docker")])
    compose = _resolved_compose(env)
    assert set(compose["services"]) == {"stage", "demo", "tensorboard"}
    stage = compose["services"]["stage"]
    assert stage["image"] == "jpqwen:25.04"
    assert stage["build"]["args"]["BASE_IMAGE"] == "nvcr.io/nvidia/nemo:25.04"
    assert stage["deploy"]["resources"]["reservations"]["devices"] == [
        {"capabilities": ["gpu"], "driver": "nvidia", "count": 2}
    ]
    assert stage["ipc"] == "host"
    assert stage["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert stage["user"] == f"{os.getuid()}:{os.getgid()}"
    assert f"{tmp_path}:{tmp_path}" in stage["volumes"]  # same path inside and out
    assert ".:/workspace/jpqwen" in stage["volumes"]
    assert stage["env_file"] == [{"path": ".env", "required": False}]
    assert stage["environment"]["WORK_DIR"] == str(tmp_path)
    demo = compose["services"]["demo"]
    assert demo["ports"] and "pipeline.demo" in demo["command"] and "--web" in demo["command"]
    assert "tensorboard" in compose["services"]["tensorboard"]["command"]
    # docker flags live in compose.yaml only: the Makefile never calls `docker run`
    assert "docker run" not in (REPO / "Makefile").read_text()


def test_compose_spec_rejects_a_broken_service():
    from compose_spec import PyCompose

    with pytest.raises(ValueError, match="memlock"):
        PyCompose.from_yaml("services:\n  s:\n    image: x\n    ulimits: {memlock: lots}\n")


def test_dockerfile_builds_from_the_pinned_nemo_image():
    from dockerfile_parse import DockerfileParser

    df = DockerfileParser(path=str(REPO / "docker" / "Dockerfile"))
    args = {
        i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1] if "=" in i["value"] else ""
        for i in df.structure
        if i["instruction"] == "ARG"
    }
    assert args["BASE_IMAGE"] == "nvcr.io/nvidia/nemo:25.04"
    assert df.baseimage == "nvcr.io/nvidia/nemo:25.04"
    copied = " ".join(i["value"] for i in df.structure if i["instruction"] == "COPY")
    for part in ("jpqwen", "pipeline", "configs", "requirements/container.txt"):
        assert part in copied


def test_image_digest_pins_the_base_image(tmp_path):
    out = make("image", "RUNTIME=docker", "-n", "BASE_DIGEST=sha256:" + "ab" * 32, f"WORK_DIR={tmp_path}").stdout
    assert "BASE_IMAGE=nvcr.io/nvidia/nemo:25.04@sha256:" + "ab" * 32 in out
    assert "docker compose -f compose.yaml build stage" in out


def test_env_file_is_ignored_by_git_and_docker():
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_doctor_without_gpu_stops_in_seconds_with_a_message(tmp_path):
    env = {**os.environ, "WORK_DIR": str(tmp_path), "JPQWEN_FORCE_NO_GPU": "1", "JPQWEN_ENV_FILE": str(tmp_path / "x")}
    t = time.time()
    proc = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "pipeline.doctor", "--quiet", "--require-gpu", "--stage", "pretrain"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.time() - t < 30
    assert proc.returncode == 3
    assert "`make pretrain` needs 1 NVIDIA GPU" in proc.stderr and "Traceback" not in proc.stderr

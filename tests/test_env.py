from jpqwen.env import is_secret, load_dotenv, public_env, redact
from jpqwen.monitoring import wandb_settings
from jpqwen.paths import WorkDir


def test_redact_hides_every_secret_value():
    env = {"WANDB_API_KEY": "abcd1234secret", "HF_TOKEN": "hf_xyzxyzxyz", "WORK_DIR": "/w"}
    text = "key abcd1234secret and hf_xyzxyzxyz in /w"
    assert redact(text, env) == "key *** and *** in /w"
    assert public_env(env) == {"WANDB_API_KEY": "***", "HF_TOKEN": "***", "WORK_DIR": "/w"}
    assert is_secret("MY_SERVICE_PASSWORD") and not is_secret("WANDB_PROJECT")


def test_secret_names_are_whole_name_parts():
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "WANDB_API_KEY",
        "NGC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "TOKEN",
        "db_password",
        "OPENAI_APIKEY",
        "SSH_PRIVATE_KEY",
    ):
        assert is_secret(name), name
    # TOKENIZERS_PARALLELISM=false made handoff refuse a clean package on the lent GPU
    for name in ("TOKENIZERS_PARALLELISM", "TOKENS", "MAX_TOKENS", "WANDB_PROJECT", "KEYBOARD", "HF_HOME"):
        assert not is_secret(name), name


def test_dotenv_does_not_override_the_shell(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("WANDB_PROJECT=from-file\nJPQWEN_TEST_ONLY=1\n")
    monkeypatch.setenv("WANDB_PROJECT", "from-shell")
    monkeypatch.delenv("JPQWEN_TEST_ONLY", raising=False)
    assert load_dotenv(env_file) == env_file
    import os

    assert os.environ["WANDB_PROJECT"] == "from-shell"
    assert os.environ["JPQWEN_TEST_ONLY"] == "1"
    monkeypatch.delenv("JPQWEN_TEST_ONLY")


def test_wandb_is_offline_without_a_key_and_online_with_one(tmp_path):
    work = WorkDir(tmp_path)
    assert wandb_settings(work, "data", {}).mode == "offline"
    assert wandb_settings(work, "data", {"WANDB_API_KEY": "k" * 40}).mode == "online"
    s = wandb_settings(work, "pretrain", {"WANDB_MODE": "disabled", "WANDB_TAGS": "a, b"})
    assert not s.enabled and s.tags == ("jpqwen", "pretrain", "a", "b")
    assert "k" * 40 not in wandb_settings(work, "x", {"WANDB_API_KEY": "k" * 40}).describe()


def test_env_example_lists_every_variable_and_no_values_for_secrets():
    from jpqwen.config import REPO_ROOT

    lines = [ln for ln in (REPO_ROOT / ".env.example").read_text().splitlines() if ln and not ln.startswith("#")]
    values = dict(ln.split("=", 1) for ln in lines)
    for name in (
        "WANDB_API_KEY",
        "WANDB_ENTITY",
        "WANDB_PROJECT",
        "WANDB_MODE",
        "HF_TOKEN",
        "HF_HOME",
        "WORK_DIR",
        "DATA_DIR",
        "IMAGE",
        "GPUS",
        "MODEL_SOURCE",
        "DATA_SOURCE",
    ):
        assert name in values, name
    assert values["WANDB_API_KEY"] == "" and values["HF_TOKEN"] == ""

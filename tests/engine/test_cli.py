"""``python -m merges.engine``: run, validate, inspect; exit codes and messages."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from merges.engine import hostile
from merges.engine.cli import main

from .merge_fixtures import checkpoint, leftovers, recipe, write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    write(models / "a.safetensors", checkpoint(1))
    write(models / "b.safetensors", checkpoint(2))
    r = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.4}], ["a", "b"])
    pin = hashlib.sha256((models / "b.safetensors").read_bytes()).hexdigest()
    r["inputs"] = {"a": {"path": "models/a.safetensors"}, "b": {"sha256": pin}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(r))
    return tmp_path


def test_validate_ok_and_json(workdir, capsys) -> None:
    assert main(["validate", str(workdir / "recipe.yaml")]) == 0
    assert "recipe hash" in capsys.readouterr().out
    assert main(["validate", str(workdir / "recipe.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True and len(out["recipe_hash"]) == 64


def test_validate_reports_each_error_with_exit_2(workdir, capsys) -> None:
    bad = yaml.safe_load((workdir / "recipe.yaml").read_text())
    bad["steps"][0]["alpha"] = {"blocks": [0.5] * 25}
    bad["steps"].append({"id": "x", "op": "nope", "inputs": ["a"]})
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["validate", str(workdir / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "steps[0].alpha: expected 26 block weights for sd1, got 25" in err
    assert "steps[1].op: unknown op 'nope'" in err
    assert main(["validate", str(workdir / "missing.yaml")]) == 2


def test_run_resolves_paths_against_the_recipe(workdir, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # not the recipe's directory
    out = workdir / "out.safetensors"
    code = main(
        ["run", str(workdir / "recipe.yaml"), "-o", str(out), "--input", f"b={workdir / 'models' / 'b.safetensors'}", "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["tensors"] == len(load_file(str(out)))
    assert result["input_sha256s"]["b"] == hashlib.sha256((workdir / "models" / "b.safetensors").read_bytes()).hexdigest()
    assert captured.err == ""  # no progress bar when stderr is not a terminal


def test_run_refuses_a_file_that_is_not_the_pinned_one(workdir, capsys) -> None:
    out = workdir / "out.safetensors"
    code = main(["run", str(workdir / "recipe.yaml"), "-o", str(out), "--input", f"b={workdir / 'models' / 'a.safetensors'}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "inputs.b:" in err and "the recipe pins" in err
    assert leftovers(workdir, {"models", "recipe.yaml"}) == []


def test_run_usage_errors_exit_2(workdir, capsys) -> None:
    args = ["run", str(workdir / "recipe.yaml"), "-o", str(workdir / "o.safetensors")]
    assert main(args + ["--input", "nonsense"]) == 2
    assert main(args + ["--input", "zz=/x"]) == 2
    assert "not in the recipe" in capsys.readouterr().err
    # b has no file: a validation error naming the input.
    assert main(args) == 2
    assert "inputs.b: no file given" in capsys.readouterr().err
    assert main(args + ["--input", f"b={workdir / 'models' / 'b.safetensors'}", "--device", "tpu"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_run_hostile_input_exits_1_and_leaves_nothing(workdir, capsys) -> None:
    (workdir / "models" / "evil.safetensors").write_bytes(hostile.pickle_bomb())
    code = main(
        ["run", str(workdir / "recipe.yaml"), "-o", str(workdir / "o.safetensors"), "--input", f"b={workdir / 'models' / 'evil.safetensors'}"]
    )
    assert code == 1
    assert "pickle" in capsys.readouterr().err
    assert leftovers(workdir, {"models", "recipe.yaml"}) == []


def test_run_mismatched_architecture_exits_2(workdir, capsys) -> None:
    write(workdir / "models" / "xl.safetensors", checkpoint(3, arch="sdxl"))
    code = main(
        ["run", str(workdir / "recipe.yaml"), "-o", str(workdir / "o.safetensors"), "--input", f"b={workdir / 'models' / 'xl.safetensors'}"]
    )
    assert code == 2
    assert "inputs.b: is an sdxl checkpoint, the recipe is for sd1" in capsys.readouterr().err


def test_inspect_text_and_json(workdir, capsys) -> None:
    path = workdir / "models" / "a.safetensors"
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "architecture  sd1" in text and "sha256" in text
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "checkpoint" and info["hashes"]["sha256"]
    (workdir / "evil.safetensors").write_bytes(hostile.overlapping_offsets())
    assert main(["inspect", str(workdir / "evil.safetensors")]) == 1
    assert "[overlap]" in capsys.readouterr().err


def test_inspect_escapes_terminal_control_characters(workdir, capsys) -> None:
    path = write(workdir / "meta.safetensors", checkpoint(1), {"ss_output_name": "evil\x1b[2Jname"})
    assert main(["inspect", str(path), "--no-hashes"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "evil\\x1b[2Jname" in out


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "merges.engine", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0
    assert "run" in done.stdout and "validate" in done.stdout and "inspect" in done.stdout

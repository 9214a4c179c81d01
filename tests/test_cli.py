"""`python -m foodclf classify`: text and JSON, folders, bad files among good ones."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factories import photo
from foodclf.cli import COMMANDS, main
from shared_data import FOOD_PHOTOS


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "dishes").mkdir()
    for i in range(3):
        (tmp_path / "dishes" / f"dish{i}.jpg").write_bytes(photo((60 * i, 100, 200)))
    return tmp_path / "dishes"


@pytest.fixture
def env(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("FOODCLF_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("FOODCLF_PRECISION", "fp32")
    monkeypatch.setenv("FOODCLF_ENGINE", "torch")  # OpenVINO's own tests are in test_engines.py


def test_json_output_one_object_per_photo(env, folder, capsys):
    assert main(["classify", "--json", "--top-k", "3", str(folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["path"] for r in records] == [str(folder / f"dish{i}.jpg") for i in range(3)]
    for record in records:
        assert set(record) >= {"path", "class_scores", "highest_probability_class", "uncertain"}
        assert len(record["class_scores"]) == 3
        assert record["highest_probability_class"] == record["class_scores"][0]["label"]


def test_text_output_names_the_top_category(env, folder, capsys):
    assert main(["classify", str(folder / "dish0.jpg")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(folder / "dish0.jpg") + ": ") and "%" in out


def test_bad_file_is_reported_and_the_rest_classified(env, folder, capsys):
    (folder / "notes.jpg").write_text("I am not a photo")
    status = main(["classify", "--json", str(folder)])
    captured = capsys.readouterr()
    assert status == 1
    assert len(captured.out.strip().splitlines()) == 3
    assert "notes.jpg: This file is not an image" in captured.err
    assert "Traceback" not in captured.err


def test_unknown_model_folder_is_one_clear_line(monkeypatch, folder, tmp_path, capsys):
    monkeypatch.setenv("FOODCLF_MODEL", str(tmp_path / "missing-model"))
    assert main(["classify", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "There is no model folder" in err and "Traceback" not in err


def test_bad_setting_names_the_variable(monkeypatch, folder, capsys):
    monkeypatch.setenv("FOODCLF_TOP_K", "lots")
    assert main(["classify", str(folder)]) == 1
    assert "FOODCLF_TOP_K must be a whole number" in capsys.readouterr().err


def test_usage_lists_the_commands(capsys):
    assert main([]) == 2
    assert "classify" in capsys.readouterr().err


def test_module_entry_point_runs(env, folder):
    done = subprocess.run(
        [sys.executable, "-m", "foodclf", "classify", "--json", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 3


@pytest.mark.skipif(not FOOD_PHOTOS.is_dir(), reason="../shared/data/food-photos is absent")
def test_shared_test_split_gives_75_results(env, capsys):
    assert main(["classify", "--json", str(FOOD_PHOTOS / "test")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 75


def test_zero_shot_labels_from_the_command_line(env, folder, tiny_clip_dir, capsys):
    assert (
        main(
            [
                "classify",
                "--json",
                "--model",
                str(tiny_clip_dir),
                "--labels",
                "pizza, not food",
                "--top-k",
                "0",
                str(folder / "dish0.jpg"),
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert sorted(s["label"] for s in record["class_scores"]) == ["not food", "pizza"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_answers_help_from_the_one_table(name, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([name, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m foodclf {name}")
    assert COMMANDS[name][0] in out  # the one-line help listed in foodclf --help


def test_the_command_list_names_every_command(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name:<10} {help_text}" in listed for name, (help_text, _, _) in COMMANDS.items())

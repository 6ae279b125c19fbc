"""The one YAML reader behind task specs, configs, registries, references and tolerances."""

from __future__ import annotations

import pytest

from ijepa_eval.errors import UserError
from ijepa_eval.tasks.spec import TaskSpecError
from ijepa_eval.yaml_file import read_yaml


def test_reads_a_document(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: x\nlrs: [0.1, 1]\n")
    assert read_yaml(path, "task YAML") == {"name": "x", "lrs": [0.1, 1]}


def test_bad_yaml_and_unreadable_files_are_one_error_naming_what_and_where(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TaskSpecError, match=r"task YAML .*bad\.yaml is not valid YAML"):
        read_yaml(bad, "task YAML", error=TaskSpecError)
    with pytest.raises(UserError, match=r"cannot read config file .*missing\.yaml: No such file"):
        read_yaml(tmp_path / "missing.yaml", "config file")


def test_a_document_cannot_construct_python_objects(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        read_yaml(path, "checkpoint registry")
    assert not marker.exists()

"""genaug.checkpoint: the one weights_only loader and its error mapping."""

from __future__ import annotations

import pytest
import torch

from genaug.checkpoint import CheckpointError, load_checkpoint


class _NotATensor:
    """Pickled as a class reference: the weights-only unpickler refuses it."""


def test_a_plain_dict_loads(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(3)}, path)
    assert torch.equal(load_checkpoint(path, "test weights")["w"], torch.arange(3))


def test_pickled_objects_are_refused_without_torch_advice(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"obj": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, "test weights")
    message = str(info.value)
    assert str(path) in message and "not test weights" in message and "never unpickles" in message
    assert "weights_only=False" not in message and "weights_only" not in message


@pytest.mark.parametrize("content", [b"", b"not a zip or pickle", b"PK\x03\x04broken"])
def test_damaged_files_name_the_file_and_reason(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt: not test weights") as info:
        load_checkpoint(path, "test weights")
    assert "weights_only=False" not in str(info.value)


def test_a_non_dict_and_a_missing_file(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(CheckpointError, match="holds a Tensor, not a dict"):
        load_checkpoint(path, "test weights")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt", "test weights")

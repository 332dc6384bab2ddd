import pytest
import torch

from vcfnet.errors import CheckpointError, WeightsUnavailableError
from vcfnet.models.artifact import load_checkpoint, save_checkpoint
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import Preprocessing


def test_checkpoint_round_trip(tmp_path):
    model = build_model()
    h = save_checkpoint(
        tmp_path / "m.pt", model, preprocessing=Preprocessing(), config={"epochs": 1}
    )
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.model_hash == h and ckpt.class_names == ("acute", "chronic", "pathologic")
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    assert torch.allclose(model(x), ckpt.model(x))


def test_weights_from_a_local_state_dict(tmp_path):
    source = build_model(num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = build_model(weights=tmp_path / "resnet18.pth")
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 3


def test_imagenet_offline_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        build_model(weights="imagenet")


def test_not_a_checkpoint(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a vcfnet checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    (tmp_path / "y.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "y.pt")

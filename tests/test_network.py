import pytest
import torch

from models.network import ARCHITECTURES, build_network, load_pretrained_backbone

# Facts of torchvision's resnets (their state_dict), so a downloaded ImageNet file loads by name.
TORCHVISION_FACTS = {
    "resnet18": (122, {"layer4.1.bn2.weight": (512,), "layer2.0.downsample.0.weight": (128, 64, 1, 1)}),
    "resnet34": (
        218,
        {"layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.0.downsample.1.running_var": (512,)},
    ),
    "resnet50": (320, {"layer1.0.conv3.weight": (256, 64, 1, 1), "layer4.2.bn3.weight": (2048,)}),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [32, 64])
def test_every_architecture_returns_one_logit_per_attribute(arch: str, size: int) -> None:
    network = build_network(arch, 40).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 40)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("arch", sorted(TORCHVISION_FACTS))
def test_state_dict_names_and_shapes_match_torchvision(arch: str) -> None:
    count, shapes = TORCHVISION_FACTS[arch]
    state = build_network(arch, 1000).state_dict()
    assert len(state) == count
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["fc.weight"].shape[0] == 1000
    for name, shape in shapes.items():
        assert tuple(state[name].shape) == shape


def test_pretrained_weights_load_everything_but_the_head(tmp_path) -> None:
    imagenet = build_network("resnet18", 1000)
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    network = build_network("resnet18", 40)
    skipped = load_pretrained_backbone(network, tmp_path / "resnet18.pth")
    assert skipped == ["fc.bias", "fc.weight"]
    assert torch.equal(network.layer3[1].conv2.weight, imagenet.layer3[1].conv2.weight)
    assert network.fc.weight.shape == (40, 512)


def test_pretrained_weights_of_another_architecture_are_refused(tmp_path) -> None:
    torch.save(build_network("resnet50", 1000).state_dict(), tmp_path / "resnet50.pth")
    with pytest.raises((ValueError, RuntimeError)):
        load_pretrained_backbone(build_network("resnet18", 40), tmp_path / "resnet50.pth")


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        build_network("vgg16", 40)

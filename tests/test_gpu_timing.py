"""How the model is timed (bench/gpu_timing.py): the precision a pass runs in, and torch's settings
put back after it."""

import torch

from bench import gpu_timing


def test_precision_sets_tf32_or_ieee_or_autocast_and_puts_torchs_settings_back() -> None:
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    with gpu_timing.precision("tf32", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        assert not torch.is_autocast_enabled("cpu")
    with gpu_timing.precision("bf16", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert (conv.fp32_precision, matmul.fp32_precision) == before and not torch.is_autocast_enabled("cpu")

"""A Triton Inference Server model repository from a stored model: the same TorchScript file.

    python -m exporters.triton --out triton-models       # the store's face-attributes:latest
    tritonserver --model-repository triton-models        # on a machine with Triton

Layout: ``face_attributes/config.pbtxt``, ``face_attributes/1/model.pt`` (the stored artifact,
byte for byte) and ``face_attributes/labels.txt``. The model takes what the service's worker
takes: uint8 pixels already resized and centre-cropped by ``models/preprocess.py``
(``preprocessing`` in ``/metadata``); Triton's dynamic batcher groups requests.
"""

import shutil
from pathlib import Path

import bentoml

from exporters.command import run_export
from models.names import PROTOCOL_MODEL_NAME
from models.store import model_file, read_card
from serving.settings import Settings

INPUT_NAME = "pixels__0"  # libtorch backend: <name>__<position of the forward() argument>
OUTPUT_NAME = "probabilities__0"
LABELS_FILE = "labels.txt"
MAX_BATCH_SIZE = Settings().max_batch_size  # as the BentoML worker's default
MAX_QUEUE_DELAY_US = 1000  # wait at most 1 ms for company: batching must not cost latency alone


def config_pbtxt(model: bentoml.Model) -> str:
    """Triton's model configuration (protobuf text format) for ``model``."""
    card = read_card(model)
    size = card.preprocessing.crop_size
    return f"""name: "{PROTOCOL_MODEL_NAME}"
platform: "pytorch_libtorch"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_UINT8
    dims: [ 3, {size}, {size} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {len(card.attributes)} ]
    label_filename: "{LABELS_FILE}"
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}
}}
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
parameters {{
  key: "bentoml_model"
  value: {{ string_value: "{model.tag}" }}
}}
"""


def export_triton(model: bentoml.Model, out: Path) -> Path:
    """Write the repository under ``out``; returns the model's folder."""
    folder = out / PROTOCOL_MODEL_NAME
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file(model), folder / "1" / "model.pt")
    (folder / LABELS_FILE).write_text("\n".join(read_card(model).attributes) + "\n")
    (folder / "config.pbtxt").write_text(config_pbtxt(model))
    return folder


def main() -> None:
    run_export(
        "python -m exporters.triton",
        __doc__,
        "the model repository folder to write",
        export_triton,
        "Triton model repository",
    )


if __name__ == "__main__":
    main()

"""A Triton Inference Server model repository from a stored model: the same TorchScript file.

    python -m models.triton --out triton-models          # the store's face-attributes:latest
    tritonserver --model-repository triton-models        # on a machine with Triton

Layout: ``face_attributes/config.pbtxt``, ``face_attributes/1/model.pt`` (the stored artifact,
byte for byte) and ``face_attributes/labels.txt``. The model takes what the service's worker
takes: uint8 pixels already resized and centre-cropped by ``models/preprocess.py``
(``preprocessing`` in ``/metadata``); Triton's dynamic batcher groups requests.
"""

import argparse
import shutil
from pathlib import Path

import bentoml

from models.edge import DEFAULT_MAX_IMAGES
from models.oip import MODEL_NAME  # one name for the model on every protocol
from models.store import MODEL_FILE, read_card, require_model, served_model_tag

INPUT_NAME = "pixels__0"  # libtorch backend: <name>__<position of the forward() argument>
OUTPUT_NAME = "probabilities__0"
LABELS_FILE = "labels.txt"
MAX_BATCH_SIZE = 2 * DEFAULT_MAX_IMAGES  # as the BentoML worker's default
MAX_QUEUE_DELAY_US = 1000  # wait at most 1 ms for company: batching must not cost latency alone


def config_pbtxt(model: bentoml.Model) -> str:
    """Triton's model configuration (protobuf text format) for ``model``."""
    card = read_card(model)
    size = card.preprocessing.crop_size
    return f"""name: "{MODEL_NAME}"
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
    folder = out / MODEL_NAME
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path_of(MODEL_FILE), folder / "1" / "model.pt")
    (folder / LABELS_FILE).write_text("\n".join(read_card(model).attributes) + "\n")
    (folder / "config.pbtxt").write_text(config_pbtxt(model))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the model repository folder to write")
    parser.add_argument(
        "--model", default=served_model_tag(), help="model tag in the store (default: face-attributes:latest)"
    )
    args = parser.parse_args()
    folder = export_triton(require_model(args.model), args.out)
    print(f"Triton model repository: {folder}")


if __name__ == "__main__":
    main()

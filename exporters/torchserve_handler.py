"""TorchServe handler: the same decoding, preprocessing and TorchScript model as the BentoML service.

Packed into the ``.mar`` by ``python -m exporters.torchserve`` together with the project's
modules it imports, the stored ``model.pt`` and the model card (``card.json``). It needs no
BentoML and no web framework: torch, Pillow, NumPy and pydantic. Each request's
body is one encoded image; TorchServe may batch several requests into one call. The answer is
``{attribute: probability}`` in CelebA order; a bad image gets its 4xx status and
``{"error", "message"}``, as from the service.
"""

import json
from pathlib import Path
from typing import Any

from models.card import ModelCard
from models.runtime import ModelRuntime
from serving.errors import ServiceError
from serving.inference.images import decode_each, decoded_pixels, rejoin
from serving.settings import MAX_PIXELS_ENV, Settings

CARD_FILE = "card.json"


class FaceAttributesHandler:
    def __init__(self, model_dir: Path) -> None:
        self.card = ModelCard.model_validate_json((model_dir / CARD_FILE).read_text())
        self.preset = self.card.preprocessing.preset()
        # The service's pixel limit, from the same variable; nothing else here is the service's.
        self.max_pixels = Settings.from_env(only={MAX_PIXELS_ENV}).max_pixels
        self.runtime = ModelRuntime(model_dir / "model.pt", self.card.preprocessing.crop_size)

    def __call__(self, rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
        """(HTTP status, answer) per request, in order."""
        outcomes = decode_each([_body(row) for row in rows], self.preset, self.max_pixels)
        if (pixels := decoded_pixels(outcomes)) is not None:
            outcomes = rejoin(outcomes, self.runtime(pixels))
        return [
            (outcome.status, outcome.body())
            if isinstance(outcome, ServiceError)
            else (200, dict(zip(self.card.attributes, outcome.tolist(), strict=True)))
            for outcome in outcomes
        ]


def _body(row: dict[str, Any]) -> bytes:
    data = row.get("data") or row.get("body") or b""
    return bytes(data) if isinstance(data, bytes | bytearray) else json.dumps(data).encode()


_handler: FaceAttributesHandler | None = None


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[dict[str, Any]] | None:
    """TorchServe's entry point: loads once, then answers each batch."""
    global _handler
    if _handler is None:
        _handler = FaceAttributesHandler(Path(context.system_properties["model_dir"]))
    if data is None:
        return None
    answers = []
    for index, (status, answer) in enumerate(_handler(data)):
        if status != 200:
            context.set_response_status(status, "Bad Request" if status == 400 else "Error", index)
        answers.append(answer)
    return answers

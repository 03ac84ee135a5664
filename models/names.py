"""What the model is called: its name in the BentoML store and on the inference protocols."""

STORE_NAME = "face-attributes"  # in the BentoML model store: face-attributes:<version>
DEFAULT_MODEL_TAG = f"{STORE_NAME}:latest"
# On the Open Inference Protocol, in Triton's model repository and in TorchServe's archive.
PROTOCOL_MODEL_NAME = "face_attributes"
# The same model behind face detection, on the Open Inference Protocol: a photo in, a row per face out.
FACES_PROTOCOL_MODEL_NAME = "face_attributes_faces"

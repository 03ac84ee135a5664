"""Real photographs that ship inside packages (nothing is downloaded), with their faces labelled.

The boxes were labelled once, by eye, on the photos (brow to chin, cheek to cheek): what a person
sees, not what the detector answered. ``group_photo`` tiles the real faces, some mirrored, into
one crowded picture whose boxes follow from where each was pasted.
"""

import io
from dataclasses import dataclass

from matplotlib import cbook
from PIL import Image, ImageOps

Box = tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class Photo:
    name: str
    image: Image.Image  # RGB
    faces: list[Box]  # the faces a person sees, labelled by eye

    def jpeg(self, quality: int = 90) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()


def astronaut() -> Photo:
    """Eileen Collins, NASA portrait (scikit-image): one frontal face, 512x512."""
    from skimage import data

    return Photo("astronaut", Image.fromarray(data.astronaut()), [(180, 75, 265, 175)])


def grace_hopper() -> Photo:
    """Grace Hopper, US Navy portrait (matplotlib's sample data): one frontal face with glasses."""
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        image = Image.open(file).convert("RGB")
    return Photo("grace_hopper", image, [(165, 140, 360, 340)])


def cameraman() -> Photo:
    """scikit-image's cameraman, grey: a face turned three-quarters, looking into a camera."""
    from skimage import data

    return Photo("cameraman", Image.fromarray(data.camera()).convert("RGB"), [(195, 110, 255, 205)])


def no_face_photos() -> list[Photo]:
    """Photographs with no human face: a coffee cup, a cat, a rocket, coins, a galaxy field."""
    from skimage import data

    named = {
        "coffee": data.coffee(),
        "chelsea_the_cat": data.chelsea(),
        "rocket": data.rocket(),
        "coins": data.coins(),
        "hubble_deep_field": data.hubble_deep_field(),
    }
    return [Photo(name, Image.fromarray(pixels).convert("RGB"), []) for name, pixels in named.items()]


def group_photo(columns: int = 5, rows: int = 4) -> Photo:
    """``columns * rows`` real faces on one grey canvas: the two portraits, alternately mirrored,
    each cropped around its face and scaled so the face is about 110 pixels wide."""
    sources = [astronaut(), grace_hopper()]
    tile = (240, 280)
    canvas = Image.new("RGB", (tile[0] * columns, tile[1] * rows), (128, 128, 128))
    boxes = []
    for index in range(columns * rows):
        source = sources[index % 2]
        left, top, right, bottom = source.faces[0]
        scale = 110 / (right - left)
        face = source.image.resize((round(source.image.width * scale), round(source.image.height * scale)))
        centre_x, centre_y = (left + right) / 2 * scale, (top + bottom) / 2 * scale
        crop_box = (round(centre_x - tile[0] / 2), round(centre_y - tile[1] / 2))
        cropped = face.crop((*crop_box, crop_box[0] + tile[0], crop_box[1] + tile[1]))
        mirrored = (index // 2) % 2 == 1
        if mirrored:
            cropped = ImageOps.mirror(cropped)
        x, y = (index % columns) * tile[0], (index // columns) * tile[1]
        canvas.paste(cropped, (x, y))
        face_left = left * scale - crop_box[0]
        face_right = right * scale - crop_box[0]
        if mirrored:
            face_left, face_right = tile[0] - face_right, tile[0] - face_left
        boxes.append((
            round(x + face_left), round(y + top * scale - crop_box[1]),
            round(x + face_right), round(y + bottom * scale - crop_box[1]),
        ))  # fmt: skip
    return Photo(f"group_of_{columns * rows}", canvas, boxes)


def scaled(photo: Photo, side: int) -> Photo:
    """A square photo resized (bicubic) to ``side`` pixels, its labelled faces with it."""
    factor = side / photo.image.width
    boxes = [
        (round(left * factor), round(top * factor), round(right * factor), round(bottom * factor))
        for left, top, right, bottom in photo.faces
    ]
    image = photo.image.resize((side, side), Image.Resampling.BICUBIC)
    return Photo(f"{photo.name} {side}x{side}", image, boxes)


def phone_photo(photo: Photo, size: tuple[int, int] = (4000, 3000)) -> Photo:
    """A square photo scaled to the height of a phone's 12-megapixel frame, centred on grey."""
    tall = scaled(photo, size[1])
    canvas = Image.new("RGB", size, (128, 128, 128))
    shift = (size[0] - size[1]) // 2
    canvas.paste(tall.image, (shift, 0))
    boxes = [(left + shift, top, right + shift, bottom) for left, top, right, bottom in tall.faces]
    return Photo(f"phone photo {size[0]}x{size[1]}", canvas, boxes)


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes: 1 for the same box, 0 for disjoint ones."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0

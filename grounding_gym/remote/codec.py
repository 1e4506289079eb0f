"""Lossless JSON encoding of Gymnasium observations, infos, actions and spaces.

JSON alone turns tuples into lists, cannot hold NaN or bytes, and knows no arrays or images.
`to_json` writes every value that JSON cannot hold as an object tagged `{"__gg__": kind, ...}`;
`from_json` reverses it, so `from_json(json.loads(json.dumps(to_json(x))))` equals `x`:

| Python value | JSON |
|---|---|
| `None`, `bool`, `int`, `str`, finite `float`, `list` | itself |
| non-finite `float` (`nan`, `inf`, `-inf`) | `{"__gg__": "float", "value": "nan"}` |
| `tuple` | `{"__gg__": "tuple", "items": [...]}` |
| `dict` with `str` keys (none of them `"__gg__"`) | itself; other dicts: `{"__gg__": "dict", "items": [[k, v], ...]}` |
| uint8 `ndarray` (H, W) or (H, W, 1/3/4), an image | PNG, base64: `{"__gg__": "png", "shape": [...], "png": "..."}` |
| any other numeric `ndarray` | raw bytes, base64, with dtype and shape |
| numpy scalar (`np.float32(0.5)`) | `{"__gg__": "scalar", "dtype": "float32", "value": ...}` |
| `PIL.Image.Image` in a PNG mode (1, L, LA, P, RGB, RGBA, I;16) | PNG, base64 |

What does not survive: a decoded PIL image is a plain `PIL.Image.Image` with the same mode,
size, palette and pixels, but its `info` metadata (dpi, ICC profile, ...) is not carried;
anything else (objects, object-dtype arrays, CMYK images) raises `TypeError` naming where it is.

PNG encoding is the costly step, so `ImageCodec` keeps the last few encodings (and decodings):
a conversation that repeats earlier views is encoded once.
"""  # noqa: E501 (table rows)

from __future__ import annotations

import base64
import hashlib
import io
import math
import weakref
from typing import Any

import numpy as np
from gymnasium import spaces
from PIL import Image

from grounding_gym.lru import LRU
from grounding_gym.spaces import ImageSpace, UnicodeText

TAG = "__gg__"
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
"""PIL modes PNG stores losslessly."""
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNG encoder: 1 is several times faster than PIL's 6 and still lossless."""
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class ImageCodec:
    """`to_json` / `from_json` with PNG encodings and decodings cached.

    Encodings are kept by pixel content (an observation and the conversation's PIL copy of the
    same view are encoded once); a PIL image already encoded is recognised by identity without
    hashing its pixels again, so a PIL image must not be changed in place once encoded (envs
    append new images to `info["messages"]`, they do not redraw old ones). Decodings are kept by
    their base64 text.

    Args:
        cache_size: images kept each way (a 5-turn conversation shows 6 views).
    """

    def __init__(self, cache_size: int = 16):
        self._encoded = LRU(cache_size)  # content key -> base64 PNG
        self._encoded_pil = LRU(cache_size)  # id(image) -> (weak reference, base64 PNG)
        self._decoded = LRU(cache_size)  # base64 PNG -> PIL image

    # ------------------------------------------------------------------ encode
    def to_json(self, value: Any, where: str = "value") -> Any:
        """A JSON-able form of `value` (see the module table); `where` names it in errors."""
        if isinstance(value, np.generic):  # before the Python types: np.float64 is a float
            return {
                TAG: "scalar",
                "dtype": value.dtype.str,
                "value": self.to_json(value.item(), where),
            }
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
        if isinstance(value, list):
            return [self.to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {
                TAG: "tuple",
                "items": [self.to_json(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if isinstance(value, dict):
            return self._dict_to_json(value, where)
        if isinstance(value, np.ndarray):
            return self._array_to_json(value, where)
        if isinstance(value, Image.Image):
            return self._pil_to_json(value, where)
        raise TypeError(
            f"{where}: cannot encode {type(value).__name__} for the wire; "
            f"supported: JSON types, tuple, numpy arrays and scalars, PIL images"
        )

    def _dict_to_json(self, value: dict, where: str) -> dict:
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: self.to_json(v, f"{where}.{k}") for k, v in value.items()}
        return {
            TAG: "dict",
            "items": [
                [self.to_json(k, f"{where} key"), self.to_json(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ],
        }

    def _array_to_json(self, array: np.ndarray, where: str) -> dict:
        if array.dtype == object:
            raise TypeError(f"{where}: object arrays cannot be encoded; convert to a numeric dtype")
        if _is_image_array(array):
            pixels = np.ascontiguousarray(
                array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
            )
            image = Image.fromarray(pixels)
            key = (
                image.mode,
                image.size,
                (),
                hashlib.blake2b(pixels.data, digest_size=16).digest(),
            )
            png = self._encoded.get(key, lambda: _png_b64(image))
            return {TAG: "png", "shape": list(array.shape), "png": png}
        data = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")
        return {TAG: "ndarray", "dtype": array.dtype.str, "shape": list(array.shape), "data": data}

    def _pil_to_json(self, image: Image.Image, where: str) -> dict:
        if image.mode not in PNG_MODES:
            raise TypeError(
                f"{where}: PIL mode {image.mode!r} has no lossless PNG form; "
                f"convert to one of {sorted(PNG_MODES)}"
            )
        known = self._encoded_pil.peek(id(image))
        if known is not None and known[0]() is image:
            return {TAG: "pil", "png": known[1]}
        key = (
            image.mode,
            image.size,
            tuple(image.getpalette() or ()),
            hashlib.blake2b(image.tobytes(), digest_size=16).digest(),
        )
        png = self._encoded.get(key, lambda: _png_b64(image))
        self._encoded_pil.put(id(image), (weakref.ref(image), png))
        return {TAG: "pil", "png": png}

    # ------------------------------------------------------------------ decode
    def from_json(self, data: Any) -> Any:
        """The value `to_json` encoded as `data`; arrays and images are fresh copies."""
        if isinstance(data, list):
            return [self.from_json(v) for v in data]
        if not isinstance(data, dict):
            return data
        kind = data.get(TAG)
        if kind is None:
            return {k: self.from_json(v) for k, v in data.items()}
        if kind == "float":
            return _NON_FINITE[data["value"]]
        if kind == "tuple":
            return tuple(self.from_json(v) for v in data["items"])
        if kind == "dict":
            return {self.from_json(k): self.from_json(v) for k, v in data["items"]}
        if kind == "png":
            return np.array(self._decoded_image(data["png"])).reshape(data["shape"])
        if kind == "ndarray":
            raw = base64.b64decode(data["data"])
            return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()
        if kind == "scalar":
            return np.dtype(data["dtype"]).type(self.from_json(data["value"]))
        if kind == "pil":
            return self._decoded_image(data["png"]).copy()
        raise ValueError(f"unknown wire tag {TAG}={kind!r}: client and server versions differ")

    def _decoded_image(self, b64: str) -> Image.Image:
        return self._decoded.get(b64, lambda: _png_image(b64))


def _is_image_array(array: np.ndarray) -> bool:
    return (
        array.dtype == np.uint8
        and array.size > 0
        and (array.ndim == 2 or array.ndim == 3 and array.shape[2] in (1, 3, 4))
    )


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_image(b64: str) -> Image.Image:
    """The decoded image as a plain `Image.Image` (no file object, no PNG metadata)."""
    with Image.open(io.BytesIO(base64.b64decode(b64))) as png:
        png.load()
        image = png.copy()
    image.info = {}
    return image


# ---------------------------------------------------------------------------- spaces
def space_to_json(space: spaces.Space, where: str = "space") -> dict:
    """A JSON description of `space` that `space_from_json` rebuilds to an equal space.

    Supports Dict, Tuple, Text (and `UnicodeText`), `ImageSpace`, Box, Discrete, MultiDiscrete
    and MultiBinary; anything else raises `TypeError`.
    """
    codec = ImageCodec(cache_size=0)
    if isinstance(space, spaces.Dict):
        return {
            "type": "Dict",
            "spaces": {k: space_to_json(s, f"{where}.{k}") for k, s in space.spaces.items()},
        }
    if isinstance(space, spaces.Tuple):
        return {
            "type": "Tuple",
            "spaces": [space_to_json(s, f"{where}[{i}]") for i, s in enumerate(space.spaces)],
        }
    if isinstance(space, UnicodeText):
        return {"type": "UnicodeText", "max_length": space.max_length}
    if isinstance(space, spaces.Text):
        return {
            "type": "Text",
            "max_length": space.max_length,
            "min_length": space.min_length,
            "charset": space.characters,
        }
    if isinstance(space, ImageSpace):
        return {"type": "ImageSpace", "max_pixels": space.max_pixels, "min_side": space.min_side}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": codec.to_json(space.low),
            "high": codec.to_json(space.high),
            "dtype": space.dtype.str,
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": codec.to_json(space.nvec),
            "start": codec.to_json(space.start),
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": codec.to_json(space.n)}
    raise TypeError(
        f"{where}: cannot describe {space!r} over the wire; supported: Dict, Tuple, Text, "
        f"UnicodeText, ImageSpace, Box, Discrete, MultiDiscrete, MultiBinary"
    )


def space_from_json(data: dict) -> spaces.Space:
    """The space `space_to_json` described."""
    codec = ImageCodec(cache_size=0)
    kind = data["type"]
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([space_from_json(s) for s in data["spaces"]])
    if kind == "UnicodeText":
        return UnicodeText(data["max_length"])
    if kind == "Text":
        return spaces.Text(
            data["max_length"], min_length=data["min_length"], charset=data["charset"]
        )
    if kind == "ImageSpace":
        return ImageSpace(data["max_pixels"], min_side=data["min_side"])
    if kind == "Box":
        return spaces.Box(
            codec.from_json(data["low"]),
            codec.from_json(data["high"]),
            dtype=np.dtype(data["dtype"]),
        )
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(
            codec.from_json(data["nvec"]), start=codec.from_json(data["start"])
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(codec.from_json(data["n"]))
    raise ValueError(f"unknown space type {kind!r}: client and server versions differ")

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
| any other bool, int, uint or float `ndarray` | raw bytes, base64, with dtype and shape |
| numpy bool, int, uint or float scalar (`np.float32(0.5)`) | `{"__gg__": "scalar", "dtype": "float32", "value": ...}` |
| `PIL.Image.Image` in a PNG mode (1, L, LA, P, RGB, RGBA, I;16) | PNG, base64 |

What does not survive: a decoded PIL image is a plain `PIL.Image.Image` with the same mode,
size, palette and pixels, but its `info` metadata (dpi, ICC profile, ...) is not carried;
anything else (objects, object, complex or string arrays, CMYK images) raises `TypeError` naming
where it is.

PNG encoding is the costly step, so `ImageCodec` keeps the last few encodings (and decodings):
a conversation that repeats earlier views is encoded once.

Decoding is bounded, since the server decodes what any client sends: a PNG is refused from its
header when it has more than `max_decode_pixels` pixels (before any pixel is decoded), the
decoded-image cache holds at most `cache_bytes`, arrays and scalars take only bool, int, uint
and float dtypes (`np.void` would let 119 bytes ask for a 250 MB value) whose data must match
their shape, nesting is limited to `MAX_DEPTH` levels, and every error names the tag and quotes
at most 80 characters of the input. Refusals are `WireDecodeError` (a `ValueError`).
"""  # noqa: E501 (table rows)

from __future__ import annotations

import base64
import binascii
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
NUMERIC_KINDS = frozenset("biuf")
"""numpy dtype kinds the decoder accepts: bool, signed and unsigned int, float."""
DEFAULT_MAX_DECODE_PIXELS = 1 << 24
"""Largest image (pixels) `from_json` decodes by default: 16.8 MP, above every env's view budget
(the server passes its own, smaller bound)."""
DEFAULT_CACHE_BYTES = 64 << 20
"""Budget of the decoded-image cache, bytes of pixels."""
MAX_DEPTH = 64
"""Deepest nesting of lists / dicts / tags `from_json` follows."""


class WireDecodeError(ValueError):
    """A wire value the decoder refuses (malformed, unsupported dtype, over a limit)."""


def _quote(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters (error messages never echo a whole request)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} chars)"


class ImageCodec:
    """`to_json` / `from_json` with PNG encodings and decodings cached.

    Encodings are kept by pixel content (an observation and the conversation's PIL copy of the
    same view are encoded once); a PIL image already encoded is recognised by identity without
    hashing its pixels again, so a PIL image must not be changed in place once encoded (envs
    append new images to `info["messages"]`, they do not redraw old ones). Decodings are kept by
    their base64 text.

    Args:
        cache_size: images kept each way (a 5-turn conversation shows 6 views).
        max_decode_pixels: largest PNG `from_json` decodes (checked from its header).
        cache_bytes: budget of the decoded-image cache (pixel bytes).
    """

    def __init__(
        self,
        cache_size: int = 16,
        max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.max_decode_pixels = max_decode_pixels
        self._encoded = LRU(cache_size)  # content key -> base64 PNG
        self._encoded_pil = LRU(cache_size)  # id(image) -> (weak reference, base64 PNG)
        self._decoded = LRU(  # digest of the base64 PNG -> PIL image
            cache_size, max_bytes=cache_bytes, size=_image_bytes
        )

    def clear(self) -> None:
        """Drop every cached encoding and decoding (a closed session frees its memory)."""
        self._encoded.clear()
        self._encoded_pil.clear()
        self._decoded.clear()

    # ------------------------------------------------------------------ encode
    def to_json(self, value: Any, where: str = "value") -> Any:
        """A JSON-able form of `value` (see the module table); `where` names it in errors."""
        if isinstance(value, np.generic) and value.dtype.kind in NUMERIC_KINDS:
            # before the Python types: np.float64 is a float
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
        if array.dtype.kind not in NUMERIC_KINDS or array.dtype.fields:
            raise TypeError(
                f"{where}: {array.dtype} arrays cannot be encoded; only bool, int, uint and "
                "float arrays travel on the wire (convert to one of them)"
            )
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
    def from_json(self, data: Any, depth: int = 0) -> Any:
        """The value `to_json` encoded as `data`; arrays and images are fresh copies.

        Raises:
            WireDecodeError: `data` is malformed or over a limit (see the module docstring).
        """
        if depth > MAX_DEPTH:
            raise WireDecodeError(f"wire value nested deeper than {MAX_DEPTH} levels")
        if isinstance(data, list):
            return [self.from_json(v, depth + 1) for v in data]
        if not isinstance(data, dict):
            return data
        kind = data.get(TAG)
        if kind is None:
            return {k: self.from_json(v, depth + 1) for k, v in data.items()}
        try:
            return self._tagged(kind, data, depth)
        except WireDecodeError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, binascii.Error) as err:
            raise WireDecodeError(
                f"malformed {TAG}={_quote(kind, 20)} value {_quote(data)}: "
                f"{type(err).__name__}: {_quote(str(err), 120)}"
            ) from err

    def _tagged(self, kind: Any, data: dict, depth: int) -> Any:
        if kind == "float":
            return _NON_FINITE[data["value"]]
        if kind == "tuple":
            return tuple(self.from_json(v, depth + 1) for v in _list(data["items"]))
        if kind == "dict":
            return {
                _hashable(self.from_json(k, depth + 1)): self.from_json(v, depth + 1)
                for k, v in _list(data["items"])
            }
        if kind == "png":
            return np.array(self._decoded_image(data["png"])).reshape(_shape(data["shape"]))
        if kind == "ndarray":
            dtype, shape = _numeric_dtype(data["dtype"]), _shape(data["shape"])
            raw = base64.b64decode(data["data"], validate=True)
            if len(raw) != math.prod(shape) * dtype.itemsize:
                raise WireDecodeError(
                    f"ndarray data of {len(raw):,} bytes does not fit shape {shape} of "
                    f"{dtype} ({math.prod(shape) * dtype.itemsize:,} bytes)"
                )
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if kind == "scalar":
            value = data["value"]
            if isinstance(value, dict) and value.get(TAG) == "float":
                value = _NON_FINITE[value["value"]]
            if not isinstance(value, (bool, int, float)):
                raise WireDecodeError(f"scalar value must be a number, got {_quote(value)}")
            return _numeric_dtype(data["dtype"]).type(value)
        if kind == "pil":
            return self._decoded_image(data["png"]).copy()
        raise WireDecodeError(
            f"unknown wire tag {TAG}={_quote(kind, 40)}: client and server versions differ"
        )

    def _decoded_image(self, b64: Any) -> Image.Image:
        if not isinstance(b64, str):
            raise WireDecodeError(f"png must be a base64 string, got {type(b64).__name__}")
        key = hashlib.blake2b(b64.encode("ascii", "replace"), digest_size=16).digest()
        return self._decoded.get(key, lambda: _png_image(b64, self.max_decode_pixels))


def _image_bytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise WireDecodeError(f"items must be a list, got {_quote(value)}")
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, np.ndarray)):
        raise WireDecodeError(f"dict key must be hashable, got {type(key).__name__}")
    return key


def _shape(value: Any) -> tuple[int, ...]:
    if not (
        isinstance(value, list)
        and len(value) <= 32
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    ):
        raise WireDecodeError(f"shape must be a list of up to 32 ints >= 0, got {_quote(value)}")
    return tuple(value)


def _numeric_dtype(name: Any) -> np.dtype:
    """`np.dtype(name)` if it is a bool, int, uint or float dtype; else `WireDecodeError`."""
    try:
        dtype = np.dtype(name) if isinstance(name, str) and len(name) <= 16 else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in NUMERIC_KINDS or dtype.fields or dtype.subdtype:
        raise WireDecodeError(
            f"dtype {_quote(name, 40)} refused: only bool, int, uint and float dtypes travel "
            "on the wire"
        )
    return dtype


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


def _png_image(b64: str, max_pixels: int) -> Image.Image:
    """The decoded image as a plain `Image.Image` (no file object, no PNG metadata); refused
    from its header when it has more than `max_pixels` pixels (a decompression bomb)."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64, validate=True))) as png:
            width, height = png.size
            if png.format != "PNG" or width * height > max_pixels:
                raise WireDecodeError(
                    f"image refused before decoding: {png.format} of {width} x {height} px; "
                    f"the wire takes PNGs of at most {max_pixels:,} px"
                )
            png.load()
            image = png.copy()
    except (OSError, SyntaxError, Image.DecompressionBombError, binascii.Error) as err:
        raise WireDecodeError(f"unreadable png: {type(err).__name__}: {_quote(str(err))}") from err
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

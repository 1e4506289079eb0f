"""One module per benchmark file format; `grounding_gym.data.loaders` registers them by name.

What every format shares, one module per job: `records` (`DatasetFormatError`, file iteration
with record offsets, JSON fields), `images` (base64 validation, lazy `EncodedImageRef` sources,
header sizes), `boxes` (box parsing and clipping), `choices` (options and answer letters).
"""

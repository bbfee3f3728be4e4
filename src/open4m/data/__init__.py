"""Aligned multimodal data: on-disk formats, transforms, pseudo-labelers and a procedural world.

Kept import-light on purpose: `import open4m.data` pulls in nothing heavy (no OpenCV, no
webdataset); each submodule imports what it needs when it is used.
"""

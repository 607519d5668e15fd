"""Built-in augmentation methods. Importing this package registers them (specs.py: methods and their
options; catalog.py: presets) in genaug.registry.REGISTRY; the editors (mask.py, noise.py) and the
models are imported only when a preset builds an editor."""

from genaug.methods.catalog import register_builtins
from genaug.registry import REGISTRY

register_builtins(REGISTRY)

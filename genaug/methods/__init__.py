"""Built-in augmentation methods. Importing this package registers them in genaug.registry.REGISTRY."""

from genaug.methods import mask, noise  # noqa: F401  (imported for their registrations)

"""Model artifacts: signatures, packages (save and load) and the flavor registry.

A model package is one content-addressed manifest naming the model's files, its signature and
metadata; see :mod:`gyre.models.packaging`. Model libraries are imported only when a flavor is
used, so importing this package stays cheap.
"""

from gyre.models.packaging import (
    Flavor,
    LoadedModel,
    PackageManifest,
    Predictor,
    get_flavor,
    known_flavors,
    load_model,
    read_manifest,
    register_flavor,
    save_model,
)
from gyre.models.signature import (
    ModelSignature,
    TensorSpec,
    encode_inputs,
    encode_target,
    infer_signature,
)

__all__ = [
    "Flavor",
    "LoadedModel",
    "ModelSignature",
    "PackageManifest",
    "Predictor",
    "TensorSpec",
    "encode_inputs",
    "encode_target",
    "get_flavor",
    "infer_signature",
    "known_flavors",
    "load_model",
    "read_manifest",
    "register_flavor",
    "save_model",
]

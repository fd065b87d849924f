"""The config options of every model, without the models: the config's typed specs, its
schema and the workflow's parse read them without importing torch. Each model's module
re-exports its own table as ``OPTIONS``.
"""

from __future__ import annotations

from ...infra.options import Option

__all__ = [
    "CCT_ACTIVATIONS",
    "CCT_DEFAULTS",
    "CCT_OPTIONS",
    "CCT_TINY",
    "EXTERNAL_OPTIONS",
    "MASK_AT",
    "MLP_OPTIONS",
    "UNRECORDED_DEFAULTS",
    "VGG_OPTIONS",
]

#: the MLP's config options
MLP_OPTIONS: dict[str, Option] = {
    "hidden": Option(4096, "MLP: hidden units", {"type": "integer", "minimum": 2}),
    "keep_fraction": Option(
        0.5,
        "share of each masked layer's units the unmuted sub-network keeps (the paper: 0.5)",
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
}

#: where VGG-11's turn-over masks go: on convolutions' feature maps, or on the classifier's input
MASK_AT = ("convs", "classifier")

#: VGG-11's config options
VGG_OPTIONS: dict[str, Option] = {
    "width": Option(
        1.0, "VGG-11: channel multiplier", {"type": "number", "exclusiveMinimum": 0, "maximum": 16}
    ),
    "masked_layers": Option(
        None,
        "VGG-11: mask only the last N convolutions (null: all 8)",
        {"type": ["integer", "null"], "minimum": 1},
    ),
    "keep_fraction": MLP_OPTIONS["keep_fraction"],
    "mask_groups": Option(
        None,
        "one mask bit per group of consecutive feature maps (or features), this many groups "
        "per masked layer (null: one bit per map)",
        {"type": ["integer", "null"], "minimum": 2},
    ),
    "share_masks": Option(
        False, "VGG-11: masked layers of equal width use one mask", {"type": "boolean"}
    ),
    "mask_at": Option(
        "convs",
        "VGG-11: mask the convolutions' feature maps, or only the classifier's input "
        "(Kobayashi et al.'s single masked layer)",
        {"type": "string", "enum": list(MASK_AT)},
    ),
}

#: the default options (a CCT-7/3x2 for 28x28 inputs)
CCT_DEFAULTS: dict = {
    "depth": 7,
    "heads": 4,
    "embed_dim": 256,
    "tokenizer_channels": 64,
    "mlp_ratio": 2.0,
    "tokenizer_layers": 2,
    "kernel_size": 3,
    "positional_embedding": "learnable",
    "activation": "relu",  # the paper: "all the models use the ReLU activation"
    "keep_fraction": 0.5,
}

#: a tiny variant that trains a few epochs on 4,000 digits on a CPU quickly
CCT_TINY: dict = {**CCT_DEFAULTS, "depth": 2, "heads": 2, "embed_dim": 32, "tokenizer_channels": 16}

#: the CCT encoder MLP's activations (:mod:`.cct` maps each name to its function)
CCT_ACTIVATIONS = ("gelu", "relu")

_INT1 = {"type": "integer", "minimum": 1}
#: the CCT's config options (defaults: :data:`CCT_DEFAULTS`)
CCT_OPTIONS: dict[str, Option] = {
    "depth": Option(CCT_DEFAULTS["depth"], "CCT: transformer encoder blocks", _INT1),
    "heads": Option(CCT_DEFAULTS["heads"], "CCT: attention heads per block", _INT1),
    "embed_dim": Option(
        CCT_DEFAULTS["embed_dim"],
        "CCT: token width (residual stream)",
        {"type": "integer", "minimum": 2},
    ),
    "tokenizer_channels": Option(
        CCT_DEFAULTS["tokenizer_channels"],
        "CCT: feature maps of the hidden tokenizer convolutions",
        {"type": "integer", "minimum": 2},
    ),
    "mlp_ratio": Option(
        CCT_DEFAULTS["mlp_ratio"],
        "CCT: encoder MLP hidden units per embedding unit",
        {"type": "number", "exclusiveMinimum": 0},
    ),
    "tokenizer_layers": Option(
        CCT_DEFAULTS["tokenizer_layers"], "CCT: tokenizer convolutions", _INT1
    ),
    "kernel_size": Option(CCT_DEFAULTS["kernel_size"], "CCT: tokenizer kernel size", _INT1),
    "positional_embedding": Option(
        CCT_DEFAULTS["positional_embedding"],
        "CCT: positional embedding",
        {"type": "string", "enum": ["learnable", "sine", "none"]},
    ),
    "activation": Option(
        CCT_DEFAULTS["activation"],
        "CCT: encoder MLP activation (the paper: ReLU)",
        {"type": "string", "enum": sorted(CCT_ACTIVATIONS)},
    ),
    "keep_fraction": MLP_OPTIONS["keep_fraction"],
}

#: the options of every external model
EXTERNAL_OPTIONS: dict[str, Option] = {
    "turnover": Option(
        "head",
        'where the turn-over masks go: "head" (the input of the final classifier) or a list '
        "of module names whose outputs are masked (channels, or the last dim of tokens)",
        {
            "anyOf": [
                {"type": "string", "enum": ["head"]},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ]
        },
    ),
    "mask_groups": Option(
        64,
        "mask bits per site, each covering a group of consecutive channels or features "
        "(capped at the number of units; null: one bit per unit)",
        {"type": ["integer", "null"], "minimum": 2},
    ),
    "head_hidden": Option(
        None,
        "null, or N: the head becomes Linear(features, N) + ReLU + a mask on its N hidden "
        "units + Linear(N, classes)",
        {"type": ["integer", "null"], "minimum": 2},
    ),
    "keep_fraction": MLP_OPTIONS["keep_fraction"],
    "weights": Option(
        None,
        "null, a local state-dict file (.pth, .pt, .bin, .safetensors), a torchvision weights "
        "name (DEFAULT, IMAGENET1K_V1, ...) already in torch's cache, or a timm pretrained tag "
        "(DEFAULT, a1_in1k, ...) already in the Hugging Face or torch hub cache: nothing is "
        "ever downloaded",
        {"type": ["string", "null"], "minLength": 1},
    ),
    "preprocess": Option(
        "dataset",
        "dataset: standardise the images with the training split's channel statistics; "
        "model: the model's own preprocessing (timm's data config, a torchvision weights' "
        "transforms): images resized to its input size with its interpolation, standardised "
        "with its mean and std",
        {"enum": ["dataset", "model"]},
    ),
    "small_input": Option(
        "auto",
        'ResNets on small images: a 3x3 stride-1 stem without max-pool; "auto" does it for '
        "inputs of at most 64 pixels",
        {"enum": ["auto", True, False]},
    ),
    "model_args": Option(
        {}, "keyword arguments of the model's constructor or factory", {"type": "object"}
    ),
}

#: options a config slice records only when they differ from these defaults (added after
#: artifacts were made with external models: their params stay the same)
UNRECORDED_DEFAULTS = {"preprocess": EXTERNAL_OPTIONS["preprocess"].default}

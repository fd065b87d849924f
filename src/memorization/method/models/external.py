"""Any torchvision or timm classifier, or a factory function, with turn-over masks.

Model names with a ``:`` are built here:

- ``torchvision:NAME``: a torchvision classification model (``torchvision.models.get_model``,
  never with downloaded weights);
- ``timm:NAME``: a timm model (``pip install timm``), ``pretrained=False``, ``in_chans`` set
  (pretrained weights come from a local file or from the Hugging Face / torch hub cache,
  never from the network: see ``weights``);
- ``package.module:function``: a factory of the user's, imported with importlib and called
  with ``num_classes=`` (and ``in_channels=`` / ``in_chans=`` when its signature names
  them) plus ``model_args``.

The number of classes comes from the data; so do the input channels (a torchvision model's
first convolution is rebuilt for 1-channel data with the same hyper-parameters). The
classifier is replaced by a new one **without bias** (as in the paper's models: a bias is
added by both sub-networks, so every example would update it), optionally with a masked
hidden layer (``head_hidden``). The network is then wrapped by
:func:`memorization.method.turnover.turnover`; named sites are checked by
:func:`~memorization.method.turnover.prove_turnover` when the model is built.

The option that says where the masks go is ``turnover``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ...data.preprocess import Preprocess
from ..turnover import TurnoverSiteError, find_head, prove_turnover
from ..turnover import turnover as wrap_turnover
from ..turnover.head import bias_free_head, replace_module
from ..turnover.model import TurnOverModel
from .options import EXTERNAL_OPTIONS as OPTIONS
from .options import UNRECORDED_DEFAULTS

__all__ = [
    "OPTIONS",
    "UNRECORDED_DEFAULTS",
    "build_external",
    "load_matching",
    "model_preprocessing",
    "parse_name",
    "preprocessing_of",
]


#: inputs at most this many pixels wide get the small-input ResNet stem with "auto"
SMALL_INPUT_PIXELS = 64


def parse_name(name: str) -> tuple[str, str]:
    """``("torchvision" | "timm" | "factory", rest)`` of an external model name."""
    prefix, sep, rest = str(name).partition(":")
    if not sep or not prefix or not rest:
        raise ValueError(
            f"external model {name!r}: use torchvision:NAME, timm:NAME or package.module:function"
        )
    if prefix in ("torchvision", "timm"):
        return prefix, rest
    return "factory", str(name)


def _options(options: Mapping) -> dict:
    """The options with defaults applied; unknown keys refused with close matches."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(OPTIONS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown option(s) of external models: {unknown}{hint}")
    out = {k: options.get(k, opt.default) for k, opt in OPTIONS.items()}
    out["model_args"] = dict(out["model_args"] or {})
    return out


def _torchvision(arch: str, n_classes: int, model_args: dict) -> nn.Module:
    """A torchvision classification model, randomly initialised (weights are loaded later)."""
    import torchvision  # heavy: imported only when a torchvision model is built

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"torchvision has no classification model {arch!r}{hint}")
    return torchvision.models.get_model(arch, weights=None, num_classes=n_classes, **model_args)


def _timm(arch: str, n_classes: int, channels: int, model_args: dict) -> nn.Module:
    """A timm model for ``channels`` input channels, ``pretrained=False`` (no download)."""
    try:
        import timm  # optional dependency: imported only when a timm model is built
    except ImportError:
        raise ImportError(
            f"timm:{arch} needs timm, which is not installed: pip install timm "
            "(or pip install 'memorization[timm]')"
        ) from None
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"timm has no model {arch!r}{hint}")
    if "pretrained" in model_args:
        raise ValueError(
            f"timm:{arch}: model_args.pretrained would download; give weights: DEFAULT (or a "
            "tag) to read timm's weights from the local cache, or the path of a file"
        )
    return timm.create_model(
        arch, pretrained=False, num_classes=n_classes, in_chans=channels, **model_args
    )


def _import_factory(name: str):
    """The callable named ``package.module:function`` (attributes may be dotted)."""
    module_name, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"model factory {name!r}: cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model factory {name!r}: {module_name} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model factory {name!r} is not callable")
    return obj


def _factory(name: str, n_classes: int, channels: int, model_args: dict) -> nn.Module:
    """Call the user's factory with ``num_classes``, the channels if it names them, and
    ``model_args``."""
    fn = _import_factory(name)
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "num_classes" not in params and not var_kw:
        raise ValueError(f"model factory {name!r} must take num_classes=")
    given = {"num_classes": n_classes}
    given.update({key: channels for key in ("in_channels", "in_chans") if key in params})
    clash = sorted(set(given) & set(model_args))
    if clash:
        raise ValueError(f"model_args of {name!r} must not set {clash}: they come from the data")
    net = fn(**given, **model_args)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model factory {name!r} returned {type(net).__name__}, not an nn.Module")
    return net


def _is_resnet(net: nn.Module) -> bool:
    """A torchvision or timm ResNet with the ImageNet stem (7x7 stride-2 conv1, max-pool)."""
    family = type(net).__module__.startswith(("torchvision.models.resnet", "timm.models.resnet"))
    conv = getattr(net, "conv1", None)
    return (
        family
        and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (7, 7)
        and conv.stride == (2, 2)
        and isinstance(getattr(net, "maxpool", None), nn.Module)
    )


def _small_input(net: nn.Module, in_shape: Sequence[int], setting, name: str) -> None:
    """The CIFAR ResNet stem: conv1 3x3 stride 1, no max-pool (see ``small_input``)."""
    if setting not in ("auto", True, False):
        raise ValueError(f"small_input must be auto, true or false, got {setting!r}")
    resnet = _is_resnet(net)
    if setting is True and not resnet:
        raise ValueError(
            f"small_input: true is only known for torchvision and timm ResNets (7x7 stride-2 "
            f"conv1 and a max-pool); {name} is not one: set small_input false and adapt its "
            "stem with model_args or a factory"
        )
    if not resnet or setting is False:
        return
    if setting == "auto" and max(int(s) for s in in_shape[1:]) > SMALL_INPUT_PIXELS:
        return
    old = net.conv1
    net.conv1 = nn.Conv2d(
        old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=old.bias is not None
    ).to(device=old.weight.device, dtype=old.weight.dtype)
    net.maxpool = nn.Identity()


def _adapt_channels(net: nn.Module, channels: int) -> None:
    """Rebuild the first 3-channel convolution for ``channels`` input channels."""
    if channels == 3:
        return
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            new = nn.Conv2d(
                channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                m.dilation,
                bias=m.bias is not None,
                padding_mode=m.padding_mode,
            )
            replace_module(net, name, new.to(device=m.weight.device, dtype=m.weight.dtype))
            return
    raise ValueError(f"found no 3-channel convolution to adapt to {channels} input channels")


def _construct(name: str, in_shape: Sequence[int], n_classes: int, opts: dict) -> nn.Module:
    """The network of ``name`` for this data, its stem and input channels adapted."""
    kind, arch = parse_name(name)
    channels = int(in_shape[0])
    if kind == "torchvision":
        net = _torchvision(arch, n_classes, opts["model_args"])
    elif kind == "timm":
        net = _timm(arch, n_classes, channels, opts["model_args"])
    else:
        net = _factory(arch, n_classes, channels, opts["model_args"])
    _small_input(net, in_shape, opts["small_input"], name)
    if kind == "torchvision":
        _adapt_channels(net, channels)
    return net


def _new_head(net: nn.Module, n_classes: int, required: bool) -> None:
    """Replace the classifier by a bias-free one (refused only if ``required``)."""
    try:
        head = find_head(net, n_classes)
    except TurnoverSiteError:
        if required:
            raise
        return  # named sites on a network without a Linear classifier: keep it
    replace_module(net, head, bias_free_head(net.get_submodule(head), n_classes))


# -- weights ------------------------------------------------------------------------------------


def _looks_like_path(weights: str) -> bool:
    """A file path rather than a torchvision weights name or a timm tag."""
    suffixes = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".safetensors")
    return (
        os.sep in weights or "/" in weights or weights.endswith(suffixes) or Path(weights).exists()
    )


def _cached_torchvision_weights(arch: str, weights: str) -> Path:
    """The file of torchvision weights ``weights`` in torch's cache; never downloads."""
    import torchvision  # heavy: imported only when a torchvision model is built

    table = torchvision.models.get_model_weights(arch)
    key = weights.rpartition(".")[2]  # also "ResNet18_Weights.IMAGENET1K_V1"
    try:
        entry = table[key]
    except KeyError:
        known = ["DEFAULT", *table.__members__]
        raise ValueError(
            f"torchvision:{arch} has no weights {weights!r} (known: {', '.join(known)}); "
            "or give the path of a local state-dict file"
        ) from None
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(entry.url).path)
    if not file.is_file():
        raise FileNotFoundError(
            f"weights {weights} of torchvision:{arch} ({entry}) are not in torch's cache: "
            f"expected the file {file}. Nothing is downloaded here; on a machine with internet "
            f"run: python -c \"import torchvision; torchvision.models.get_model('{arch}', "
            f"weights='{entry.name}')\" (or curl -L -o {file.name} {entry.url}) and copy the "
            f"file to {file.parent} (TORCH_HOME moves the cache)"
        )
    return file


def _timm_cfg(arch: str, weights: str):
    """timm's pretrained config of ``arch`` with tag ``weights`` (DEFAULT: timm's default)."""
    import timm  # optional dependency: imported only when a timm model is built

    base = arch.partition(".")[0]
    tag = arch.partition(".")[2] if weights == "DEFAULT" else weights.rpartition(".")[2]
    try:
        cfg = timm.models.get_pretrained_cfg(f"{base}.{tag}" if tag else base)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{base}.*")]
        raise ValueError(
            f"timm:{arch} has no pretrained weights {weights!r} (known tags: "
            f"{', '.join(['DEFAULT', *tags])}); or give the path of a local state-dict file"
        )
    return cfg


def _cached_timm_weights(arch: str, weights: str) -> Path:
    """The file of timm's pretrained ``weights`` of ``arch`` in the Hugging Face cache (or
    torch hub's, for weights timm fetches by URL). Only the cache is read: no network call
    is made, whatever HF_HUB_OFFLINE says (the cache is HF_HUB_CACHE or HF_HOME/hub)."""
    cfg = _timm_cfg(arch, weights)
    looked = []
    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache  # installed with timm

        repo, _, revision = cfg.hf_hub_id.partition("@")
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
        for filename in names or ["model.safetensors", "pytorch_model.bin"]:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        looked.append(f"the Hugging Face repository {repo} in {constants.HF_HUB_CACHE}")
    if cfg.url:
        file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg.url).path)
        if file.is_file():
            return file
        looked.append(f"the file {file}")
    if cfg.file and Path(cfg.file).is_file():
        return Path(cfg.file)
    name = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    raise FileNotFoundError(
        f"pretrained weights {weights} of timm:{arch} ({name}) are not cached: looked for "
        f"{' and '.join(looked) or 'a file (timm knows no source)'}. Nothing is downloaded "
        f'here; on a machine with internet run: python -c "import timm; '
        f"timm.create_model('{name}', pretrained=True)\" and copy the cache (HF_HOME, "
        "TORCH_HOME) here, or save the state dict to a file and give its path"
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: the dict itself, or the one under "state_dict"/"model"."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # optional: installed with timm

        return dict(load_file(str(path), device="cpu"))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping):
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return dict(obj)
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(obj.get(key), Mapping):
                return dict(obj[key])
    raise ValueError(f"{path} holds no state dict (a mapping of names to tensors)")


def load_matching(net: nn.Module, state: Mapping[str, torch.Tensor]) -> dict:
    """Load the tensors of ``state`` whose names and shapes fit ``net``; report the rest.

    Names may carry a ``module.`` (DataParallel) or ``net.`` (a :class:`TurnOverModel`'s
    state dict) prefix. A 3-channel first convolution fits a 1-channel one by summing its
    input channels. The rest (e.g. a 1000-class classifier, an adapted stem) is skipped
    and keeps its initialisation. Returns ``{"loaded": [...], "skipped": [...],
    "missing": [...]}``; refuses a state dict of which nothing fits.
    """
    own = net.state_dict()
    prefix = max(
        ("", "module.", "net."), key=lambda p: sum(k.removeprefix(p) in own for k in state)
    )
    taken, skipped = {}, []
    for key, value in state.items():
        name = key.removeprefix(prefix)
        target = own.get(name)
        if target is not None and value.shape != target.shape and value.dim() == 4:
            if target.shape[1] == 1 and value.shape[1] == 3 and value.shape[2:] == target.shape[2:]:
                value = value.sum(dim=1, keepdim=True)
        if target is None or value.shape != target.shape:
            skipped.append(key)
        else:
            taken[name] = value
    if not taken:
        raise ValueError(
            f"none of the {len(state)} tensors fits the model (first: {list(state)[:3]})"
        )
    net.load_state_dict(taken, strict=False)
    return {"loaded": sorted(taken), "skipped": skipped, "missing": sorted(set(own) - set(taken))}


def _overlay_file(name: str, weights: str | None, model_args: Mapping) -> str | None:
    """``weights``, or the ``file`` of timm's ``pretrained_cfg_overlay`` in ``model_args``."""
    overlay = model_args.get("pretrained_cfg_overlay") or {}
    file = overlay.get("file") if isinstance(overlay, Mapping) else None
    if file is not None and weights is not None:
        raise ValueError(
            f"{name}: weights {weights!r} and model_args.pretrained_cfg_overlay.file {file!r} "
            "both name weights; give one"
        )
    if file is not None and not parse_name(name)[0] == "timm":
        raise ValueError(f"{name}: pretrained_cfg_overlay is timm's; give weights: a file")
    return weights if file is None else str(file)


def _weights_file(name: str, weights: str) -> Path:
    """The local file of ``weights`` of model ``name`` (refused, naming it, if absent)."""
    kind, arch = parse_name(name)
    if _looks_like_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} of {name} does not exist")
        return path
    if kind == "torchvision":
        return _cached_torchvision_weights(arch, weights)
    if kind == "timm":
        return _cached_timm_weights(arch, weights)
    raise ValueError(
        f"weights {weights!r} of {name}: give the path of a local state-dict file (named "
        "weights are torchvision's and timm's)"
    )


def _load_weights(net: nn.Module, name: str, weights: str | None, model_args: Mapping):
    """Load ``weights`` (a file, cached torchvision or timm weights) into ``net``."""
    weights = _overlay_file(name, None if weights is None else str(weights), model_args)
    if weights is None:
        return None
    path = _weights_file(name, weights)
    if next(iter(net.parameters())).device.type == "meta":
        return {"source": str(path), "loaded": [], "skipped": [], "missing": []}
    return {"source": str(path), **load_matching(net, _read_state_dict(path))}


# -- the model's own preprocessing --------------------------------------------------------------


def _timm_preprocess(net: nn.Module) -> Preprocess | None:
    """timm's data config of ``net`` (its ``pretrained_cfg``), or None without one."""
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None)
    if not isinstance(cfg, Mapping) or not {"input_size", "mean", "std"} <= set(cfg):
        return None
    import timm.data  # optional dependency: only for a model with a timm data config

    data = timm.data.resolve_data_config({}, model=net)
    interpolation = data.get("interpolation", "bilinear")
    return Preprocess(
        tuple(int(s) for s in data["input_size"][1:]),
        tuple(float(m) for m in data["mean"]),
        tuple(float(s) for s in data["std"]),
        interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear",
    )


def _torchvision_preprocess(arch: str, weights: str | None) -> Preprocess | None:
    """The transforms of torchvision weights ``weights`` (named), else the arch's DEFAULT."""
    import torchvision  # heavy: imported only when a torchvision model is built

    try:
        table = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        return None
    named = weights is not None and not _looks_like_path(str(weights))
    key = str(weights).rpartition(".")[2] if named else "DEFAULT"
    if key not in ["DEFAULT", *table.__members__]:
        return None
    tf = table[key].transforms()
    if not all(hasattr(tf, a) for a in ("crop_size", "mean", "std", "interpolation")):
        return None  # not an image classifier's transforms
    size = [int(s) for s in tf.crop_size]
    return Preprocess(
        (size[0], size[-1]),
        tuple(float(m) for m in tf.mean),
        tuple(float(s) for s in tf.std),
        str(getattr(tf.interpolation, "value", tf.interpolation)),
    )


def model_preprocessing(name: str, in_shape: Sequence[int], options: Mapping) -> Preprocess | None:
    """The model's own preprocessing (input size, mean, std, interpolation), or None when
    it has none: timm's ``resolve_data_config``, a torchvision weights' transforms (those
    named by ``weights``, else the architecture's DEFAULT), a factory's ``pretrained_cfg``.
    The channels of the mean and std are fitted to ``in_shape[0]``."""
    opts = _options(options)
    kind, arch = parse_name(name)
    channels = int(in_shape[0])
    if kind == "torchvision":
        found = _torchvision_preprocess(arch, opts["weights"])
    else:
        with torch.device("meta"):  # no memory, no compute: only its config is read
            builder = _timm if kind == "timm" else _factory
            net = builder(arch, 2, channels, opts["model_args"])
        found = _timm_preprocess(net)
    return None if found is None else found.for_channels(channels)


def preprocessing_of(name: str, options: Mapping, channels: int) -> Preprocess | None:
    """What the tensors of a model's data are made with: None (the dataset's channel
    statistics) unless ``options`` say ``preprocess: model``; then the model's own
    preprocessing, refused (ValueError naming the key) for a model that has none."""
    if ":" not in str(name) or options.get("preprocess", "dataset") != "model":
        return None
    found = model_preprocessing(name, (int(channels),), options)
    if found is None:
        raise ValueError(
            f"preprocess: the {name} model has no preprocessing config (no timm data config, "
            "no torchvision weights' transforms); use preprocess: dataset"
        )
    return found


# -- the model ----------------------------------------------------------------------------------


def build_external(
    name: str, in_shape: Sequence[int], n_classes: int, *, plain: bool = False, **options
) -> TurnOverModel:
    """Build external model ``name`` for inputs ``in_shape`` (C, H, W) and ``n_classes``.

    ``options`` are those of :data:`OPTIONS` (defaults applied; unknown ones refused). The
    classifier is replaced by a bias-free one (with ``head_hidden``, a masked hidden layer),
    ``weights`` are loaded (what was loaded and skipped is kept as ``model.weights_report``),
    and named sites are proved (:func:`prove_turnover`, kept as ``model.proof``) unless
    ``plain`` (a plain model: it is the same network, run without masks) or the
    model is on the meta device.
    """
    opts = _options(options)
    in_shape = tuple(int(s) for s in in_shape)
    net = _construct(name, in_shape, int(n_classes), opts)
    sites = opts["turnover"]
    head_sites = sites == "head"
    if opts["head_hidden"] is None or not head_sites:
        _new_head(net, int(n_classes), required=head_sites)
    report = _load_weights(net, name, opts["weights"], opts["model_args"])  # before the masks
    model = _wrap(net, sites, opts, in_shape, int(n_classes))
    model.weights_report = report
    on_meta = next(iter(model.parameters())).device.type == "meta"
    if not head_sites and not plain and not on_meta:
        model.proof = prove_turnover(model, in_shape, int(n_classes), n_examples=4)
    return model


def _wrap(net, sites, opts: dict, in_shape, n_classes: int) -> TurnOverModel:
    """The :class:`TurnOverModel` of ``net`` with the sites and masking options of ``opts``."""
    return wrap_turnover(
        net,
        sites,
        mask_groups=opts["mask_groups"],
        keep_fraction=opts["keep_fraction"],
        head_hidden=opts["head_hidden"],
        n_classes=n_classes,
        in_shape=in_shape,
    )

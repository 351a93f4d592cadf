"""Battery models by name: the one place that knows which models exist.

Built in: ``rt3-accounting`` (RT3's ideal bucket, :mod:`testbed.battery.rt3_accounting`), ``energy-bucket``
(an energy store with converter efficiency and static power, :mod:`testbed.battery.energy_bucket`) and
``ecm`` (the Thevenin equivalent circuit, :mod:`testbed.battery.ecm`). ``bucket`` — the name experiment
files and ``testbed battery simulate --model`` have always accepted — is an alias of ``energy-bucket``
(with its defaults, efficiency 1 and no static power, that is RT3's ideal bucket).

Adding a model: one file defining the class and a :class:`~testbed.battery.model.ModelSpec`, plus its
line in ``_BUILTIN`` below (or :func:`register` at run time, e.g. from a test or a plugin).

Failure modes: :class:`BadInputError` for an unknown name or a name registered twice.
"""

from __future__ import annotations

from devices.errors import BadInputError
from devices.registry import Registry
from testbed.battery import ecm, energy_bucket, rt3_accounting
from testbed.battery.model import BatteryModel, BatteryParams, ModelSpec

#: Old names still accepted, and the model each one always meant.
ALIASES = {"bucket": "energy-bucket"}
_BUILTIN = (ecm.SPEC, energy_bucket.SPEC, rt3_accounting.SPEC)
MODELS: Registry[ModelSpec] = Registry("battery model", ALIASES)
for _spec in _BUILTIN:
    MODELS.register(_spec.name, _spec, _spec.summary)


def names() -> list[str]:
    """Registered model names (aliases not included), sorted."""
    return sorted(MODELS.names())


def known() -> str:
    """Every accepted name, for messages: ``ecm, energy-bucket, rt3-accounting (alias bucket = energy-bucket)``."""
    return MODELS.known()


def is_known(name: str) -> bool:
    return name in MODELS


def spec(name: str) -> ModelSpec:
    """The model registered as ``name`` (or as what the alias ``name`` stands for)."""
    return MODELS.get(name)


def create(name: str, params: BatteryParams) -> BatteryModel:
    """A fresh battery of model ``name`` built from ``params``."""
    return spec(name).factory(params)


def register(model: ModelSpec) -> None:
    """Make ``model`` available by its name; :class:`BadInputError` if the name is taken."""
    MODELS.register(model.name, model, model.summary)


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (built-in models stay)."""
    if any(s.name == name for s in _BUILTIN):
        raise BadInputError(f"battery model {name!r} is built in and cannot be removed")
    if name in MODELS:
        MODELS.unregister(name)

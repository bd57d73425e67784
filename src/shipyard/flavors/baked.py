"""A scikit-learn model baked into a bundle: a pickle that loads fast and constructs only trusted names.

Loading a version through skops costs about a second before the first prediction: skops imports
every scikit-learn estimator to know which types it trusts. A bundle therefore also carries the
model as a pickle (protocol 5), written after the model was loaded through skops under the trust
policy, together with the exact list of globals the pickle references (`pickle_globals`, which
walks the opcodes with `pickletools.genops`). Loading (`load_baked`) uses a restricted unpickler
whose `find_class` gives out only those listed names, and each only if it still passes the trust
policy of `flavors/trust.py` (its class families and functions) or is one of the reviewed
pickle-machinery callables below. A pickle can call nothing but what `find_class` gives it, so
a bundle whose pickle names `os.system` or `builtins.eval` is refused before anything runs.
The loaded model then passes the same fitted-state checks (`fitted.check_fitted`) as a skops load.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Mapping
from typing import Any

from shipyard.errors import FlavorError, UntrustedArtifactError
from shipyard.flavors.fitted import check_fitted
from shipyard.flavors.trust import refused_global

__all__ = ["PICKLE_MACHINERY", "STATE_FAMILIES", "bake", "load_baked", "pickle_globals", "refusal"]

PROTOCOL = 5

# Callables the pickles of numpy arrays, random generators and plain Python containers name. Each
# was reviewed: it builds a value from the arguments the pickle gives and touches no file,
# process or network. Both numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) spellings.
PICKLE_MACHINERY: Mapping[str, str] = {
    "numpy._core.multiarray._reconstruct": "an empty ndarray of a given type, filled by its state",
    "numpy.core.multiarray._reconstruct": "numpy 1's name of the same",
    "numpy._core.multiarray.scalar": "a numpy scalar from its dtype and bytes",
    "numpy.core.multiarray.scalar": "numpy 1's name of the same",
    "numpy._core.numeric._frombuffer": "an ndarray over bytes given in the pickle (protocol 5)",
    "numpy.core.numeric._frombuffer": "numpy 1's name of the same",
    "numpy.random._pickle.__generator_ctor": "a Generator around a bit generator",
    "numpy.random._pickle.__bit_generator_ctor": "a bit generator of a named numpy class",
    "numpy.random._pickle.__randomstate_ctor": "a RandomState around a bit generator",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": "a SeedSequence from its state",
    "copyreg._reconstructor": "an object of a listed class, built by its base's constructor",
    "builtins.object": "the base copyreg._reconstructor names for plain objects",
    "builtins.slice": "a slice (ColumnTransformer's column selections)",
    "builtins.set": "a set",
    "builtins.frozenset": "a frozenset",
    "builtins.complex": "a complex number",
    "builtins.bytearray": "a bytearray",
    "collections.OrderedDict": "an ordered dict",
    # It calls what it wraps, and what it wraps is itself a global of the pickle, which must pass
    # the same checks: a partial can only bind arguments to a trusted function or class.
    "functools.partial": "a function with arguments bound; its function is checked as a global",
}

# Classes skops trusts by default (not reported, so absent from the policy's families) that
# fitted scikit-learn models hold: the compiled halves of the loss functions and the loss's
# interval of valid values. Each holds numbers only.
STATE_FAMILIES: tuple[str, ...] = (
    "sklearn._loss._loss.CyLossFunction",
    "sklearn._loss.link.Interval",
)

_STRINGS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_NO_STACK = frozenset({"PROTO", "FRAME", "STOP"})  # they leave the stack as it is
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def refusal(name: str) -> str:
    """Why a baked pickle may not reference `name`, or '' when it may."""
    if name in PICKLE_MACHINERY:
        return ""
    return refused_global(name, families=STATE_FAMILIES)


def pickle_globals(data: bytes) -> list[str]:
    """Every global (`module.name`) the pickle references, sorted, read from its opcodes without
    running it.

    Raises:
        UntrustedArtifactError: a STACK_GLOBAL takes a name that is not a plain string pushed by
            the pickle (so what it names cannot be read without running it).
    """
    found: set[str] = set()
    pushed: list[str | None] = []  # what each opcode pushed, as far as names go (None: no string)
    memo: dict[int, str | None] = {}
    for opcode, arg, position in pickletools.genops(data):
        op = opcode.name
        if op in _NO_STACK:
            continue
        if op in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.add(f"{module}.{name}")
            pushed.append(None)
        elif op == "STACK_GLOBAL":
            pair = pushed[-2:]
            if len(pair) != 2 or pair[0] is None or pair[1] is None:
                raise UntrustedArtifactError(
                    f"the pickle's STACK_GLOBAL at byte {position} takes a name that is not a string "
                    "it pushed itself; a baked model must name its globals plainly"
                )
            found.add(f"{pair[0]}.{pair[1]}")
            pushed.append(None)
        elif op in _STRINGS:
            pushed.append(str(arg))
        elif op in _GETS:
            pushed.append(memo.get(int(str(arg))))
        elif op in _PUTS:
            memo[int(str(arg))] = pushed[-1] if pushed else None
        elif op == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        else:  # any other opcode may push, pop or build: what is on top is no longer a name
            pushed.append(None)
    return sorted(found)


def bake(model: object) -> tuple[bytes, list[str]]:
    """The model as a protocol-5 pickle and the globals it references.

    Raises:
        UntrustedArtifactError: a global fails the trust policy (the bundle then keeps the skops
            artifact only).
    """
    data = pickle.dumps(model, protocol=PROTOCOL)
    names = pickle_globals(data)
    refused = {name: why for name in names if (why := refusal(name))}
    if refused:
        listed = "; ".join(f"{name} ({why})" for name, why in refused.items())
        raise UntrustedArtifactError(
            f"the model's pickle references names the trust policy refuses: {listed}"
        )
    return data, names


def load_baked(data: bytes, names: list[str] | tuple[str, ...]) -> Any:
    """Unpickle a baked model, giving out only the globals in `names` that pass the policy.

    Raises:
        UntrustedArtifactError: the pickle asks for a global outside `names`, or one the policy
            refuses; or the model's fitted state is malformed.
        FlavorError: the bytes are not a pickle.
    """
    try:
        model = _Restricted(io.BytesIO(data), frozenset(names)).load()
    except UntrustedArtifactError:
        raise
    except Exception as exc:  # a truncated or garbled pickle fails in many ways
        raise FlavorError(f"the baked model does not unpickle: {exc!r}") from None
    check_fitted(model)
    return model


class _Restricted(pickle.Unpickler):
    """An unpickler whose globals are the listed, trusted names, and nothing else."""

    def __init__(self, file: io.BytesIO, allowed: frozenset[str]) -> None:
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full not in self.allowed:
            raise UntrustedArtifactError(
                f"the baked model's pickle asks for {full}, which its bundle's manifest does not "
                "list among the globals it references; the pickle was changed after it was baked"
            )
        why = refusal(full)
        if why:
            raise UntrustedArtifactError(
                f"the baked model's pickle references {full}: {why}; Shipyard trusts only "
                "scikit-learn classes, numpy and scipy data types, reviewed maths functions and "
                "pickle's own machinery (docs/deploy.md#bundle)"
            )
        return super().find_class(module, name)

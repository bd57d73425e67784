"""The model registry: immutable numbered versions, aliases, tags, lineage, archive and delete.

Registering checks and authorizes here, then prepares the version and writes it in one
transaction (`registry.registering`). Aliases, tags, evaluations and signatures are parts of
the registry (`registry.aliases`, `.tags`, `.results`, `.signatures`), each given the context.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.attribution.summary import for_contract
from shipyard.config import Settings
from shipyard.core.batch import Task
from shipyard.core.contract import Contract
from shipyard.core.refs import ModelRef, check_alias, check_name, check_tag_key
from shipyard.errors import (
    ContractError,
    GateError,
    InputError,
    NotFoundError,
    ShipyardError,
    UntrustedArtifactError,
)
from shipyard.flavors import flavor_for, flavor_for_file, flavor_named
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.pickled import is_pickle, read_pickle
from shipyard.registry.aliases import Aliases
from shipyard.registry.lifecycle import Lifecycle
from shipyard.registry.loaded import LoadedModel, load_artifact
from shipyard.registry.queries import (
    as_ref,
    no_model,
    read_model,
    read_version,
    resolve,
    version_query,
)
from shipyard.registry.records import LIVE, Change, ModelVersion, RegisteredModel
from shipyard.registry.registering import NewVersion, insert_version, prepare_version, without_pii
from shipyard.registry.results import Results
from shipyard.registry.signatures import Signatures
from shipyard.registry.tags import Tags
from shipyard.security.access import Action, Principal
from shipyard.security.context import Context
from shipyard.security.encryption import envelope_for
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.metadata import as_utc
from shipyard.store.schema import audit_log, model_versions, models, tags

__all__ = ["Change", "ModelVersion", "RegisteredModel", "Registry", "artifact_store", "load_version"]


class Registry:
    """The registry over a metadata store and an artifact store.

    It is composed of parts, each given only what it needs: `aliases` (`Aliases`), `tags`
    (`Tags`), `results` (`Results`: evaluations and gate results) and `signatures`
    (`Signatures`) take the context, `lifecycle` (`Lifecycle`: archive, restore, delete) the
    context and the artifact store; registering and reading versions stay here. The methods
    the documentation shows (`set_alias`, `set_tag`, `archive`, ...) hand over to the parts.
    Every action is checked by `context.allow`.

    Args:
        settings: where the stores are; `Settings.from_env()` when omitted.
        actor: who makes the changes, for the audit log (the principal's name by default).
        principal: who acts, for every check; by default `security.identity.acting_principal`
            (the key in `SHIPYARD_API_KEY`, or the OS user as admin, narrowed by `SHIPYARD_RUN_AS`).
        context: act in this context instead of opening one from `settings`, `actor` and
            `principal`; the registry then leaves closing it to the caller.

    Attributes:
        context: who acts, and where; `settings`, `meta`, `principal` and `actor` are its fields.
        artifacts: the artifact store.

    Raises:
        AuthenticationError: the API key in the settings is not valid.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        actor: str | None = None,
        principal: Principal | None = None,
        context: Context | None = None,
    ) -> None:
        self._owns_context = context is None
        self.context = context or Context.open(settings, principal=principal, actor=actor)
        # The context is frozen: these are its fields, named as callers have always read them.
        self.settings, self.meta = self.context.settings, self.context.meta
        self.principal, self.actor = self.context.principal, self.context.actor
        self.artifacts = artifact_store(self.context.settings)
        self.aliases = Aliases(self.context)
        self.tags = Tags(self.context)
        self.results = Results(self.context)
        self.signatures = Signatures(self.context)
        self.lifecycle = Lifecycle(self.context, self.artifacts)

    def allow(self, action: Action, model: str | None = None) -> None:
        """Go on if this registry's principal may do `action` (on `model`); else record the
        denial in the audit log and raise (`Context.allow`).

        Raises:
            PermissionDeniedError: the role or the model scope does not allow it.
        """
        self.context.allow(action, model)

    def close(self) -> None:
        """Release the database connections (of the context it opened; a given one stays open)."""
        if self._owns_context:
            self.context.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- the parts' documented doors

    def set_alias(
        self, ref: str | ModelRef, alias: str, *, force: bool = False, reason: str | None = None
    ) -> ModelVersion:
        """Point `alias` at the version `ref` names; see `Aliases.set`."""
        return self.aliases.set(ref, alias, force=force, reason=reason)

    def remove_alias(self, name: str, alias: str, *, force: bool = False, reason: str | None = None) -> None:
        """Remove `alias` from model `name`; see `Aliases.remove`."""
        self.aliases.remove(name, alias, force=force, reason=reason)

    def set_tag(self, ref: str | ModelRef, key: str, value: str) -> None:
        """Tag a version or, with a bare `NAME`, the model; see `Tags.set`."""
        self.tags.set(ref, key, value)

    def set_description(self, ref: str | ModelRef, description: str) -> None:
        """Describe a version or, with a bare `NAME`, the model; see `Tags.describe`."""
        self.tags.describe(ref, description)

    def archive(self, ref: str | ModelRef) -> ModelVersion:
        """Archive a version; see `Lifecycle.archive`."""
        return self.lifecycle.archive(ref)

    def restore(self, ref: str | ModelRef) -> ModelVersion:
        """Bring an archived version back to live; see `Lifecycle.restore`."""
        return self.lifecycle.restore(ref)

    def delete(self, ref: str | ModelRef) -> None:
        """Delete a version and, when no other version shares it, its artifact; see `Lifecycle.delete`."""
        self.lifecycle.delete(ref)

    # ---------------------------------------------------------------- registering

    def register(
        self,
        model: object,
        *,
        name: str,
        train_data: Any = None,
        target: str | None = None,
        task: Task | None = None,
        flavor: str | None = None,
        contract: Contract | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        alias: str | None = None,
        trust_pickle: bool = False,
        trusted_types: Sequence[str] = (),
        lineage: Mapping[str, Any] | None = None,
        reference_from: ModelVersion | None = None,
    ) -> ModelVersion:
        """Register `model` as the next version of `name`.

        Args:
            model: a scikit-learn, XGBoost, LightGBM or ONNX model, or (with `trust_pickle`) any
                object with `predict`.
            name: the model's name.
            train_data: the training rows (DataFrame, Arrow table, records), target included
                when `target` names it; the contract and profile are inferred from it.
            target: the label column in `train_data`.
            task: 'classification' or 'regression', when the model does not say.
            flavor: force a flavor instead of detecting one.
            contract: use this contract instead of inferring one.
            description: free text.
            tags: key=value labels for the version.
            params: training parameters to keep in the lineage (the model's own are kept).
            metrics: numbers to keep with the version.
            alias: move this alias to the new version in the same transaction (not a protected
                one: a new version has passed no gates).
            trust_pickle: allow a custom Python model (pyfunc), whose loading runs its code.
            trusted_types: extra type names a skops artifact may construct.
            lineage: facts to add to the lineage gathered (an export's `exported_from`).
            reference_from: keep this version's reference profile and explanation summary (its
                background sample and importance) instead of computing them from `train_data`:
                an export of it answers as it does.

        Raises:
            RefError: the name is malformed.
            FlavorError: no flavor accepts the model, or it does not load back.
            ContractError: the training data or contract is unusable.
            GateError: `alias` is a protected alias.
            StoreUnavailableError: the metadata store is locked or unreachable.
        """
        check_name(name)
        self.allow(Action.REGISTER, name)
        if alias is not None:
            check_alias(alias)
            if alias in self.settings.protected_aliases:
                raise GateError(
                    f"{alias!r} is a protected alias: a new version has no gate result yet. Register "
                    f"without it, then 'shipyard evaluate', 'shipyard gates check' and "
                    f"'shipyard models alias {name}:N {alias}'"
                )
        for key in tags or {}:
            check_tag_key(key)
        chosen = flavor_named(flavor) if flavor else flavor_for(model)
        if chosen.unpickles and not trust_pickle:
            raise UntrustedArtifactError(
                f"{type(model).__qualname__} is custom Python code (pyfunc flavor); loading it "
                "later runs that code. Register it with trust_pickle=True if that is intended"
            )
        new = prepare_version(
            chosen,
            model,
            name=name,
            actor=self.actor,
            train_data=train_data,
            target=target,
            task=task,
            contract=contract,
            params=params,
            trusted_types=trusted_types,
            trust_pickle=trust_pickle,
            metrics=metrics,
            description=description,
            version_tags=tags,
        )
        if lineage:
            new = replace(new, lineage=new.lineage | dict(lineage))
        if reference_from is not None:
            new = replace(
                new,
                profile=without_pii(reference_from.profile, new.contract),
                explanation=for_contract(reference_from.explanation, new.contract),
            )
        number = insert_version(self.context, self.artifacts, name, new, alias=alias, action="register")
        return self.get(ModelRef(name, version=number))

    def register_file(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        flavor: str | None = None,
        trust_pickle: bool = False,
        trusted_types: Sequence[str] = (),
        **kwargs: Any,
    ) -> ModelVersion:
        """Register a model file (`.skops`, `.ubj`, `.txt`/`.lgb`, `.onnx`); see `register`.

        A pickle or joblib file (`.pkl`, `.pickle`, `.joblib`) is read only with `trust_pickle`;
        the object it holds is then stored like any other, so a scikit-learn model in it goes
        through skops and loads without pickle from then on.

        Raises:
            FlavorError: the file is not a model of its suffix's format.
            UntrustedArtifactError: the file is a pickle and `trust_pickle` is not set.
            InputError: the file does not exist.
        """
        self.allow(Action.REGISTER, check_name(name))
        file = Path(path)
        if not file.is_file():
            raise InputError(f"model file {file} does not exist")
        options = LoadOptions(trust_pickle=trust_pickle, trusted_types=tuple(trusted_types))
        if flavor is None and is_pickle(file):
            return self.register(
                read_pickle(file, options),
                name=name,
                trust_pickle=trust_pickle,
                trusted_types=trusted_types,
                **kwargs,
            )
        chosen = flavor_named(flavor) if flavor else flavor_for_file(file)
        try:
            model = chosen.read_file(file.read_bytes(), options)
        except ShipyardError as exc:
            raise type(exc)(f"{file} is not a usable {chosen.name} model: {exc}") from None
        return self.register(
            model,
            name=name,
            flavor=chosen.name,
            trust_pickle=trust_pickle,
            trusted_types=trusted_types,
            **kwargs,
        )

    def edit_contract(self, ref: str | ModelRef, contract: Contract) -> ModelVersion:
        """Make a new version with the same artifact and profile and a new contract.

        Raises:
            ContractError: the new contract's task or classes differ from the model's, or
                its features are not the same set as before.
        """
        base = self.get(ref)
        self.allow(Action.EDIT, base.name)
        if set(contract.names) != set(base.contract.names):
            raise ContractError(
                f"the edited contract has features {sorted(contract.names)}, but {base.ref} takes "
                f"{sorted(base.contract.names)}; a contract edit may change rules, not features"
            )
        if contract.task != base.contract.task or contract.classes != base.contract.classes:
            raise ContractError(
                f"the edited contract changes the task or classes of {base.ref}; those belong to "
                "the model and cannot be edited"
            )
        artifact = self.artifacts.get(base.artifact_digest)
        lineage = dict(base.lineage) | {
            "derived_from": str(base.ref),
            "change": "contract edit",
            "registered_by": self.actor,
        }
        new = NewVersion(
            base.flavor,
            artifact,
            contract,
            without_pii(base.profile, contract),
            lineage,
            metrics=dict(base.metrics),
            description=base.description,
            tags=dict(base.tags),
            explanation=for_contract(base.explanation, contract),
        )
        number = insert_version(
            self.context, self.artifacts, base.name, new, alias=None, action="edit_contract"
        )
        return self.get(ModelRef(base.name, version=number))

    # ---------------------------------------------------------------- reading

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """The version a reference names (`NAME` and `NAME:latest` mean the newest live one).

        Raises:
            NotFoundError: no such model, version or alias.
        """
        parsed = as_ref(ref)
        self.allow(Action.READ, parsed.name)
        with self.meta.read() as conn:
            row = resolve(conn, parsed)
            return read_version(conn, row)

    def load(
        self, ref: str | ModelRef, *, trust_pickle: bool = False, require_signature: bool | None = None
    ) -> LoadedModel:
        """Load a version to predict with; its artifact's digest is checked first.

        Args:
            ref: the version.
            trust_pickle: allow a custom Python model (pyfunc), whose loading runs its code; it is
                loaded only when it is also signed by a trusted key.
            require_signature: refuse a version without a valid signature by a trusted key
                (`SHIPYARD_TRUSTED_KEYS`); by default `SHIPYARD_REQUIRE_SIGNATURE`.

        Raises:
            NotFoundError: no such version.
            ArtifactIntegrityError: the artifact was changed on storage.
            SignatureError: a signature is required and none by a trusted key verifies.
            UntrustedArtifactError: loading would run code or types not trusted.
        """
        version = self.get(ref)  # an alias to an archived version is refused here
        self.allow(Action.PREDICT, version.name)
        required = self.settings.require_signature if require_signature is None else require_signature
        if required or (trust_pickle and flavor_named(version.flavor).unpickles):
            self.signatures.verify(version)
            signed = True
        else:  # a valid signature also lets an artifact that declares extra skops types load
            signed = self.signatures.verifies(version)
        return load_version(version, self.artifacts, trust_pickle=trust_pickle, signed=signed)

    def get_model(self, name: str) -> RegisteredModel:
        """A registered model and the state of its versions.

        Raises:
            NotFoundError: no model has that name.
        """
        self.allow(Action.READ, check_name(name))
        with self.meta.read() as conn:
            row = conn.execute(select(models).where(models.c.name == name)).first()
            if row is None:
                raise NotFoundError(no_model(conn, name))
            return read_model(conn, row)

    def list_models(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        alias: str | None = None,
    ) -> list[RegisteredModel]:
        """Registered models, optionally filtered.

        Args:
            name: a glob on the name (`fraud*`) or a substring.
            tag: `key` or `key=value`, on the model or any of its versions.
            alias: only models that have this alias.
        """
        with self.meta.read() as conn:
            self.allow(Action.READ)
            rows = conn.execute(select(models).order_by(models.c.name)).all()
            found = [read_model(conn, r) for r in rows if self.principal.sees(r.name)]
            tag_hits: set[int] | None = None
            if tag is not None:
                key, _, value = tag.partition("=")
                query = select(tags.c.model_id).where(tags.c.key == key)
                if value:
                    query = query.where(tags.c.value == value)
                tag_hits = set(conn.execute(query).scalars())
        ids = {r.name: r.id for r in rows}
        result = []
        for model in found:
            if name and not (fnmatch.fnmatchcase(model.name, name) or name in model.name):
                continue
            if tag_hits is not None and ids[model.name] not in tag_hits:
                continue
            if alias and alias not in model.aliases:
                continue
            result.append(model)
        return result

    def versions(self, name: str, *, include_archived: bool = True) -> list[ModelVersion]:
        """Every version of `name`, oldest first.

        Raises:
            NotFoundError: no model has that name.
        """
        self.allow(Action.READ, check_name(name))
        with self.meta.read() as conn:
            model_id = conn.execute(select(models.c.id).where(models.c.name == name)).scalar()
            if model_id is None:
                raise NotFoundError(no_model(conn, name))
            query = version_query().where(model_versions.c.model_id == model_id)
            if not include_archived:
                query = query.where(model_versions.c.status == LIVE)
            rows = conn.execute(query.order_by(model_versions.c.version)).all()
            return [read_version(conn, r) for r in rows]

    def history(self, name: str | None = None, *, limit: int = 100) -> list[Change]:
        """The newest recorded changes, newest first, for one model or all."""
        self.allow(Action.READ, None if name is None else check_name(name))
        query = select(audit_log).order_by(audit_log.c.seq.desc())
        if name is not None:
            query = query.where(audit_log.c.model == check_name(name))
        else:
            query = query.where(audit_log.c.model.is_not(None))
        sees = self.principal.sees  # a principal scoped to some models sees only their changes
        if name is not None or not self.principal.models:
            query = query.limit(limit)
        found: list[Change] = []
        with self.meta.read() as conn:
            for r in conn.execute(query.execution_options(yield_per=500)):
                if len(found) >= limit:
                    break
                if sees(r.model):
                    at = as_utc(r.at)
                    found.append(
                        Change(
                            id=r.seq,
                            at=at,
                            actor=r.actor,
                            action=r.action,
                            model=r.model,
                            version=r.version,
                            detail=r.detail,
                        )
                    )
        return found


def load_version(
    version: ModelVersion, artifacts: ArtifactStore, *, trust_pickle: bool = False, signed: bool = False
) -> LoadedModel:
    """Load a version from its record and the artifact store alone (no metadata store needed:
    what a Spark executor does); the artifact's digest is checked. `signed` says the caller
    verified the version's signature (a pyfunc model is unpickled only then).

    Raises:
        ArtifactIntegrityError: the artifact was changed on storage.
        UntrustedArtifactError: loading would run code or types not trusted.
    """
    return load_artifact(
        version, artifacts.get(version.artifact_digest), trust_pickle=trust_pickle, signed=signed
    )


def artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store of `settings`, sealing new blobs when a master key is configured."""
    cipher = envelope_for(settings)
    return ArtifactStore(settings.store_url, cipher=cipher, file_mode=settings.file_mode)

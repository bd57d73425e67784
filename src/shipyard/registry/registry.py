"""The model registry: immutable numbered versions, aliases, tags, lineage, archive and delete.

Registering saves the model through its flavor, loads it back (so an artifact that cannot be
loaded is never registered), infers the contract and the reference profile from the training
data, stores the artifact by digest, then writes every row in one transaction.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from shipyard.config import Settings
from shipyard.core.batch import Batch, Task
from shipyard.core.contract import Contract
from shipyard.core.inference import infer_contract
from shipyard.core.profile import Profile
from shipyard.core.refs import ModelRef, check_alias, check_name, check_tag_key
from shipyard.errors import (
    ContractError,
    GateError,
    NotFoundError,
    PermissionDeniedError,
    ShipyardError,
    UntrustedArtifactError,
)
from shipyard.flavors import flavor_for, flavor_for_file, flavor_named, pack, unpack
from shipyard.flavors.base import LoadOptions, SavedModel
from shipyard.flavors.pickled import is_pickle, read_pickle
from shipyard.registry.changes import RegistryChanges
from shipyard.registry.lineage import environment, fingerprint, git_state
from shipyard.registry.loaded import LoadedModel
from shipyard.registry.queries import (
    as_ref,
    ensure_model,
    move_alias,
    no_model,
    read_model,
    read_version,
    resolve,
    version_query,
)
from shipyard.registry.records import LIVE, Change, ModelVersion, RegisteredModel
from shipyard.registry.results import Results
from shipyard.registry.signatures import Signatures
from shipyard.registry.training import (
    check_feature_names,
    reference_profile,
    split_training,
    task_and_classes,
)
from shipyard.security.access import Action, Principal, authorize
from shipyard.security.audit import deny
from shipyard.security.encryption import envelope_for
from shipyard.security.identity import acting_principal
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.metadata import MetadataStore, as_utc, utcnow
from shipyard.store.schema import audit_log, model_versions, models, tags

__all__ = ["Change", "ModelVersion", "RegisteredModel", "Registry", "artifact_store", "load_version"]


class Registry(RegistryChanges):
    """The registry over a metadata store and an artifact store.

    Args:
        settings: where the stores are; `Settings.from_env()` when omitted.
        actor: who makes the changes, for the audit log (the principal's name by default).
        principal: who acts, for every check; by default `security.identity.acting_principal`
            (the key in `SHIPYARD_API_KEY`, or the OS user as admin, narrowed by `SHIPYARD_RUN_AS`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        actor: str | None = None,
        principal: Principal | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.meta = MetadataStore(
            self.settings.db_url, busy_timeout=self.settings.db_timeout, file_mode=self.settings.file_mode
        )
        self.artifacts = artifact_store(self.settings)
        try:
            self.principal = principal or acting_principal(self.meta, self.settings, actor=actor)
        except BaseException:
            self.meta.close()
            raise
        self.actor = actor or self.principal.name
        self.results = Results(self)
        self.signatures = Signatures(self)

    def allow(self, action: Action, model: str | None = None) -> None:
        """Go on if this registry's principal may do `action` (on `model`); else record the
        denial in the audit log and raise.

        Raises:
            PermissionDeniedError: the role or the model scope does not allow it.
        """
        try:
            authorize(self.principal, action, model)
        except PermissionDeniedError as exc:
            who = self.principal
            deny(
                self.meta,
                who.name,
                action,
                model,
                {"role": str(who.role), "via": who.via, "reason": str(exc)},
            )
            raise

    def close(self) -> None:
        """Release the database connections."""
        self.meta.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        # The round trip below loads bytes this process just made from `model`: signed by nature.
        options = LoadOptions(trust_pickle=trust_pickle, trusted_types=tuple(trusted_types), signed=True)
        features, labels = split_training(train_data, target)
        saved = chosen.save(model)
        resolved_task, classes = task_and_classes(saved.meta, task, labels, contract)
        meta = dict(saved.meta) | {"task": resolved_task, "classes": classes}
        if trusted_types:
            meta["trusted_types"] = sorted(set(trusted_types))
        saved = SavedModel(saved.flavor, saved.files, meta)
        if contract is None:
            if features is None:
                raise ContractError(
                    f"registering {name!r} needs train_data (to infer the contract) or a contract"
                )
            contract = infer_contract(features, task=resolved_task, target=target, classes=classes)
        check_feature_names(meta.get("feature_names"), contract)
        artifact = pack(saved)
        loaded = chosen.load(unpack(artifact), options)
        profile = None
        if features is not None:
            profile = reference_profile(name, contract, features, loaded)
        lineage: dict[str, Any] = {
            "flavor": chosen.name,
            "framework": meta.get("framework"),
            "framework_version": meta.get("framework_version"),
            "params": dict(meta.get("params") or {}) | dict(params or {}),
            "environment": environment(),
            "git": git_state(),
            "registered_by": self.actor,
        }
        if features is not None:
            whole = (
                features
                if labels is None or target is None
                else Batch({**features.columns, target: labels}, features.n_rows)
            )
            lineage["training_data"] = {
                "fingerprint": fingerprint(whole),
                "rows": features.n_rows,
                "columns": list(features.names),
            }
        return self._insert(
            name,
            flavor=chosen.name,
            artifact=artifact,
            contract=contract,
            profile=profile,
            lineage=lineage,
            metrics=dict(metrics or {}),
            description=description,
            version_tags=dict(tags or {}),
            alias=alias,
            action="register",
        )

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
        from shipyard.errors import InputError

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
        return self._insert(
            base.name,
            flavor=base.flavor,
            artifact=artifact,
            contract=contract,
            profile=_without_pii(base.profile, contract),
            lineage=lineage,
            metrics=dict(base.metrics),
            description=base.description,
            version_tags=dict(base.tags),
            alias=None,
            action="edit_contract",
        )

    def _insert(
        self,
        name: str,
        *,
        flavor: str,
        artifact: bytes,
        contract: Contract,
        profile: Profile | None,
        lineage: dict[str, Any],
        metrics: dict[str, Any],
        description: str,
        version_tags: dict[str, str],
        alias: str | None,
        action: str,
    ) -> ModelVersion:
        # The blob goes first: a crash after it leaves an unreferenced blob, never a row that
        # points at nothing.
        digest = self.artifacts.put(artifact)
        now = utcnow()
        profile_data = profile.to_dict() if profile is not None else None

        def change(conn: Connection) -> int:
            model_id = ensure_model(conn, name, now)
            number = (
                conn.execute(
                    update(models)
                    .where(models.c.id == model_id)
                    .values(next_version=models.c.next_version + 1, updated_at=now)
                    .returning(models.c.next_version)
                ).scalar_one()
                - 1
            )
            version_id = conn.execute(
                insert(model_versions)
                .values(
                    model_id=model_id,
                    version=number,
                    status=LIVE,
                    flavor=flavor,
                    artifact_digest=digest,
                    artifact_size=len(artifact),
                    contract=contract.to_dict(),
                    profile=profile_data,
                    metrics=metrics,
                    lineage=lineage,
                    description=description,
                    created_at=now,
                )
                .returning(model_versions.c.id)
            ).scalar_one()
            for key, value in version_tags.items():
                conn.execute(
                    insert(tags).values(model_id=model_id, version=number, key=key, value=str(value))
                )
            self._record(conn, action, name, number, {"digest": digest, "flavor": flavor})
            if alias is not None:
                move_alias(conn, model_id, alias, version_id, now)
                self._record(conn, "alias", name, number, {"alias": alias, "from": None})
            return int(number)

        number = self.meta.write(change)
        return self.get(ModelRef(name, version=number))

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
    saved = unpack(artifacts.get(version.artifact_digest))
    predictor = flavor_named(saved.flavor).load(saved, LoadOptions(trust_pickle=trust_pickle, signed=signed))
    return LoadedModel(version, predictor, signed=signed)


def artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store of `settings`, sealing new blobs when a master key is configured."""
    cipher = envelope_for(settings)
    return ArtifactStore(settings.store_url, cipher=cipher, file_mode=settings.file_mode)


def _without_pii(profile: Profile | None, contract: Contract) -> Profile | None:
    """The profile without the features the contract marks pii: their values are not kept."""
    pii = set(contract.pii_masks)
    if profile is None or not pii & set(profile.features):
        return profile
    kept = {name: column for name, column in profile.features.items() if name not in pii}
    return Profile(profile.rows, kept, profile.outputs)

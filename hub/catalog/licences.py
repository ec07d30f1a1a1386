"""Licences follow the bytes: a re-upload cannot launder another creator's licence.

1. Strictness. A licence is four permissions (Civitai's): use without credit,
   commercial uses (a set), derivatives, different licence on derivatives.
   Licence L is at least as strict as O when every permission of L is equal
   to O's or more restrictive: each boolean is False, or the same as O's, and
   L's commercial uses are a subset of O's. `Licence.strictest` is the
   combination that is at least as strict as each of its parts.
2. Publishing. When a version holds a file whose SHA-256 (same bytes) or
   AutoV3 (same tensors, other metadata) already belongs to another
   creator's published version, the hub refuses to publish it silently
   (`ReuploadConflict`, naming the original). It publishes only as a
   re-upload: `reupload_of` names one of those originals (it is shown on the
   version's page, crediting and linking it), and the model's licence must
   be at least as strict as the strictest of the originals' licences.
   Originals that are private are not named to others and not required.
3. Running. `licence_of_bytes` is the strictest licence over every published
   file with those bytes, private or not; the registry judges an input by it,
   so a re-upload with looser terms, or a file named by its SHA-256, cannot
   open a merge that the original's licence forbids.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError

PERMISSION_LABELS = {
    "allow_no_credit": "use without crediting the creator",
    "allow_derivatives": "share merges (derivatives)",
    "allow_different_license": "use different permissions on merges",
}


@dataclass(frozen=True)
class Licence:
    allow_no_credit: bool
    allow_commercial_use: frozenset[str]
    allow_derivatives: bool
    allow_different_license: bool

    @classmethod
    def of(cls, model: Model) -> "Licence":
        return cls(
            allow_no_credit=bool(model.allow_no_credit),
            allow_commercial_use=frozenset(model.allow_commercial_use or ()),
            allow_derivatives=bool(model.allow_derivatives),
            allow_different_license=bool(model.allow_different_license),
        )

    @classmethod
    def strictest(cls, licences: Iterable["Licence"]) -> "Licence | None":
        licences = list(licences)
        if not licences:
            return None
        uses = frozenset.intersection(*(lic.allow_commercial_use for lic in licences))
        return cls(
            allow_no_credit=all(lic.allow_no_credit for lic in licences),
            allow_commercial_use=uses,
            allow_derivatives=all(lic.allow_derivatives for lic in licences),
            allow_different_license=all(lic.allow_different_license for lic in licences),
        )

    def looser_than(self, other: "Licence") -> list[str]:
        """What this licence allows that `other` does not (empty: at least as strict as `other`)."""
        looser = [label for name, label in PERMISSION_LABELS.items() if getattr(self, name) and not getattr(other, name)]
        extra_uses = sorted(self.allow_commercial_use - other.allow_commercial_use)
        if extra_uses:
            looser.append("commercial use: " + ", ".join(extra_uses))
        return looser

    def as_json(self) -> dict[str, Any]:
        order = list(Model.CommercialUse.values)
        return {
            "allowNoCredit": self.allow_no_credit,
            "allowCommercialUse": sorted(self.allow_commercial_use, key=lambda u: order.index(u) if u in order else 99),
            "allowDerivatives": self.allow_derivatives,
            "allowDifferentLicense": self.allow_different_license,
        }


class LicenceConflict(CatalogError):
    """Publishing would re-license someone else's file; answered 409 with what to do."""

    status = 409
    code = "licence_conflict"

    def __init__(self, message: str, *, details: dict[str, Any], field: str | None = None):
        super().__init__(message, field=field)
        self.details = details


class ReuploadConflict(LicenceConflict):
    code = "reupload_of_published_file"

    def __init__(self, originals: list[ModelVersion]):
        first = originals[0]
        super().__init__(
            f"this file is already published by {first.model.owner.username} as {first.model.name} {first.name} "
            f"({original_path(first)}); publish it only as a re-upload that credits it (reuploadOf={first.pk}), "
            "with its licence or a stricter one",
            details={"originals": [original_json(v) for v in originals]},
            field="reupload_of",
        )
        self.originals = originals


class ReuploadLicenceTooLoose(LicenceConflict):
    code = "reupload_licence_too_loose"


def original_path(version: ModelVersion) -> str:
    return f"/models/{version.model_id}/{version.model.slug}/?modelVersionId={version.pk}"


def original_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "modelVersionId": version.pk,
        "modelId": version.model_id,
        "modelName": version.model.name,
        "versionName": version.name,
        "creator": version.model.owner.username,
        "url": original_path(version),
        "licence": Licence.of(version.model).as_json(),
    }


def _same_content_q(files: Iterable[tuple[str, str]]) -> Q | None:
    shas = {sha.lower() for sha, _ in files if sha}
    v3s = {v3.lower() for _, v3 in files if v3}
    if not shas and not v3s:
        return None
    return Q(sha256__in=shas) | Q(autov3__in=v3s) if v3s else Q(sha256__in=shas)


def reupload_originals(*, version: ModelVersion) -> list[ModelVersion]:
    """Other creators' published, non-private versions holding this version's bytes or tensors; oldest first."""
    from hub.files.models import ModelFile

    same = _same_content_q(ModelFile.objects.filter(version=version).values_list("sha256", "autov3"))
    if same is None:
        return []
    version_ids = (
        ModelFile.objects.filter(same, version__status=ModelVersion.Status.PUBLISHED)
        .exclude(version__model__owner_id=version.model.owner_id)
        .exclude(version__model__visibility=Model.Visibility.PRIVATE)
        .values_list("version_id", flat=True)
    )
    return list(
        ModelVersion.objects.filter(pk__in=version_ids)
        .select_related("model__owner")
        .order_by("published_at", "pk")
    )


def reupload_check(*, version: ModelVersion, reupload_of: int | None, adopt_licence: bool = False) -> int | None:
    """The original `version` must credit to be published (None: it is nobody else's); raises LicenceConflict.

    `reupload_of` is the original the uploader names now; one named before
    (the version's own `reupload_of`) stands unless replaced. With
    `adopt_licence` a licence looser than the originals' is tightened to
    theirs (the uploader agreed to publish under it) instead of refused.
    """
    originals = reupload_originals(version=version)
    credited = reupload_of if reupload_of is not None else version.reupload_of_id
    if not originals:
        if reupload_of is not None:
            raise CatalogError(
                f"model version {reupload_of} is not another creator's published version with this file",
                field="reupload_of",
            )
        return None
    by_id = {o.pk: o for o in originals}
    if credited not in by_id:
        raise ReuploadConflict(originals)
    required = Licence.strictest(Licence.of(o.model) for o in originals)
    looser = Licence.of(version.model).looser_than(required)
    if looser and adopt_licence:
        _licence_tighten(version.model, required)
        looser = []
    if looser:
        raise ReuploadLicenceTooLoose(
            "a re-upload keeps the original's licence or a stricter one; turn off: " + "; ".join(looser),
            details={"looser": looser, "required": required.as_json(),
                     "originals": [original_json(v) for v in originals]},
            field="licence",
        )
    return credited


def _licence_tighten(model: Model, required: Licence) -> None:
    """Make `model`'s licence at least as strict as `required` (only ever tightens)."""
    tightened = Licence.strictest([Licence.of(model), required])
    model.allow_no_credit = tightened.allow_no_credit
    model.allow_derivatives = tightened.allow_derivatives
    model.allow_different_license = tightened.allow_different_license
    model.allow_commercial_use = [u for u in Model.CommercialUse.values if u in tightened.allow_commercial_use]
    model.save(update_fields=["allow_no_credit", "allow_derivatives", "allow_different_license",
                              "allow_commercial_use", "updated_at"])


def licence_of_bytes(sha256s: Iterable[str]) -> dict[str, "BytesLicence"]:
    """For each SHA-256, the licences of every published file with those bytes (or the same tensors).

    One query: the files with these digests, and every file sharing their
    AutoV3, whatever their status (a draft's AutoV3 still names its tensors);
    only published ones lend their licence.
    """
    from hub.files.models import ModelFile

    wanted = {s.lower() for s in sha256s}
    if not wanted:
        return {}
    same_tensors = (
        ModelFile.objects.filter(sha256__in=wanted).exclude(autov3="").values("autov3")
    )
    rows = ModelFile.objects.filter(Q(sha256__in=wanted) | Q(autov3__in=same_tensors)).values_list(
        "sha256", "autov3", "version__status", "version__model__owner_id", "version__model__allow_no_credit",
        "version__model__allow_commercial_use", "version__model__allow_derivatives",
        "version__model__allow_different_license",
    )
    rows = list(rows)
    v3_of: dict[str, set[str]] = {}
    for sha, v3, *_ in rows:
        if sha in wanted and v3:
            v3_of.setdefault(sha, set()).add(v3)
    found: dict[str, list[tuple[int, Licence]]] = {}
    for sha, v3, status, owner_id, no_credit, uses, derivatives, different in rows:
        if status != ModelVersion.Status.PUBLISHED:
            continue
        licence = Licence(bool(no_credit), frozenset(uses or ()), bool(derivatives), bool(different))
        for wanted_sha in wanted:
            if sha == wanted_sha or (v3 and v3 in v3_of.get(wanted_sha, ())):
                found.setdefault(wanted_sha, []).append((owner_id, licence))
    return {sha: BytesLicence(entries) for sha, entries in found.items()}


@dataclass(frozen=True)
class BytesLicence:
    """The licences every published copy of some bytes carries, with their creators."""

    entries: list[tuple[int, Licence]]

    def forbids_derivatives_for(self, user_id: int | None) -> bool:
        """Whether a creator other than `user_id` published these bytes without allowing derivatives."""
        return any(not lic.allow_derivatives and owner != user_id for owner, lic in self.entries)

    def strictest(self) -> Licence:
        return Licence.strictest(lic for _, lic in self.entries)

"""Releases, their immutable versions and the artefact files of each version."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.exceptions import ImmutableError

__all__ = ["Artefact", "ArtefactKind", "ImmutableError", "Release", "ReleaseVersion"]


class Release(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    current_version = models.ForeignKey(
        "releases.ReleaseVersion",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DB_SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class ImmutableQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: a saved version never changes, whatever the path.

    Deleting the release is the one way out: the database cascades to its versions and
    their artefacts (ON DELETE CASCADE), never through `QuerySet.delete()`.
    """

    def update(self, **kwargs):
        raise ImmutableError(f"{self.model.__name__} rows are immutable")

    def delete(self):
        raise ImmutableError(
            f"{self.model.__name__} rows are immutable; they are deleted with their release"
        )


class ReleaseVersion(models.Model):
    release = models.ForeignKey(Release, on_delete=models.DB_CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        # The database's NO ACTION (checked at commit): a parent cannot be deleted alone,
        # yet deleting the release (which cascades to parent and child together) is.
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="children",
    )
    manifest = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DB_SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["release", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["release", "number"], name="version_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
        ]

    def __str__(self) -> str:
        # Lists load the release with the version (select_related), so no query per row.
        return f"{self.release.slug} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("release versions are immutable once saved")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("release versions are immutable; they are deleted with their release")


def artefact_upload_to(instance: Artefact, filename: str) -> str:
    # The stored name is ours, built from the validated path (never the client's raw
    # name), so it cannot escape the root. Files and packages live apart so a file
    # named like a package can never collide with one.
    folder = "packages" if instance.kind == ArtefactKind.PACKAGE else "files"
    version = instance.version
    return f"releases/{version.release_id}/v{version.number}/{folder}/{instance.path}"


class ArtefactKind(models.TextChoices):
    FILE = "file"  # a file of the version, uploaded with it
    PACKAGE = "package"  # an archive derived from the version by release.package


class Artefact(models.Model):
    """A file of a version (or a package built from it), with its size and SHA-256."""

    version = models.ForeignKey(ReleaseVersion, on_delete=models.DB_CASCADE, related_name="files")
    kind = models.CharField(max_length=10, choices=ArtefactKind.choices, default=ArtefactKind.FILE)
    path = models.CharField(max_length=500)  # relative, validated, as in the manifest
    file = models.FileField(upload_to=artefact_upload_to, max_length=700)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["version", "kind", "path"]
        constraints = [
            models.UniqueConstraint(fields=["version", "kind", "path"], name="artefact_path_unique")
        ]

    def __str__(self) -> str:
        return self.path

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("artefacts are immutable once saved")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("artefacts are immutable; they are deleted with their release")

    @property
    def stored_name(self) -> str:
        """Its file's name in the storage (FieldFile.save() sets it, before the row)."""
        name = self.file.name
        if name is None:
            raise ValueError(f"artefact {self.path!r} has no stored file")
        return name

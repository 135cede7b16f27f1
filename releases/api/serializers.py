"""Input and output shapes of the releases API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import serializers

from ..models import Artefact, Release, ReleaseVersion

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


class ReleaseSerializer(serializers.ModelSerializer):
    current_version = serializers.SerializerMethodField()
    created_by: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Release
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "current_version",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "current_version", "created_by", "created_at", "updated_at"]

    def get_current_version(self, obj: Release) -> int | None:
        version = obj.current_version
        return version.number if version is not None else None


class ReleaseInputSerializer(serializers.Serializer):
    """Shape check only; the service validates slugs and uniqueness."""

    slug = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ReleaseUpdateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=100, required=False)
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class ArtefactSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="path")

    class Meta:
        model = Artefact
        fields = ["name", "size", "sha256"]


class VersionSerializer(serializers.ModelSerializer):
    # DRF's metaclass takes declared fields off the class, so this API field does not
    # replace Field.parent (the stubs cannot know).
    parent = serializers.SerializerMethodField()  # type: ignore[assignment]
    created_by: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    files = serializers.SerializerMethodField()
    packages = serializers.SerializerMethodField()

    class Meta:
        model = ReleaseVersion
        fields = [
            "number",
            "parent",
            "manifest",
            "comment",
            "created_by",
            "created_at",
            "files",
            "packages",
        ]

    def get_parent(self, obj: ReleaseVersion) -> int | None:
        return obj.parent.number if obj.parent is not None else None

    def _of_kind(self, obj: ReleaseVersion, kind: str) -> list[dict]:
        # Uses the prefetched artefacts: no query per version.
        artefacts = [a for a in obj.files.all() if a.kind == kind]
        # many=True makes a ListSerializer, whose data is a list; the stubs type the
        # call as an ArtefactSerializer (data: a dict).
        return ArtefactSerializer(artefacts, many=True).data  # type: ignore[return-value]

    def get_files(self, obj: ReleaseVersion) -> list[dict]:
        return self._of_kind(obj, "file")

    def get_packages(self, obj: ReleaseVersion) -> list[dict]:
        return self._of_kind(obj, "package")


class VersionInputSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    paths = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
        default=None,
        help_text="Relative path of each file, in upload order (multipart drops folders).",
    )
    manifest = serializers.JSONField(required=False, default=dict)
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    # An input field, not Field.parent: DRF's metaclass takes it off the class.
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)  # type: ignore[assignment]

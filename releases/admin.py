"""The operator's console for releases: versions read-only, artefacts with checksums,
the release's jobs, and apply / rollback / package / verify actions (via services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from jobs import selectors as job_selectors
from jobs.admin_views import ReadOnlyAdminMixin
from jobs.exceptions import JobError, one_line
from jobs.models import Job, JobStatus

from . import selectors, services
from .models import Artefact, ArtefactKind, Release, ReleaseVersion

if TYPE_CHECKING:
    # What ApplyPermissionMixin is mixed into (its message_user).
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object

RECENT_JOBS = 20
# Rows a release's deletion removes with it; the release's delete permission covers them.
_DELETED_WITH_RELEASE = {"release version", "artefact", "job", "task", "job log", "audit event"}


def human_size(size: int | None) -> str:
    """Bytes in words: 512 B, 12.3 KB, 4.0 MB."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


class VersionInline(ReadOnlyInline):
    model = ReleaseVersion
    fk_name = "release"
    fields = (
        "label",
        "is_current",
        "parent_number",
        "comment",
        "files",
        "size",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-number",)

    @admin.display(description="version")
    def label(self, obj: ReleaseVersion) -> str:
        return f"v{obj.number}"

    @admin.display(description="current")
    def is_current(self, obj: ReleaseVersion) -> str:
        if obj.release.current_version_id == obj.pk:
            return format_html(
                '<span class="jd-badge jd-completed jd-current">{}</span>', "current"
            )
        return ""

    def get_queryset(self, request):
        files = Q(files__kind=ArtefactKind.FILE)
        return (
            super()
            .get_queryset(request)
            .select_related("release", "parent", "created_by")
            .annotate(
                n_files=Count("files", filter=files), n_bytes=Sum("files__size", filter=files)
            )
        )

    @admin.display(description="parent")
    def parent_number(self, obj: ReleaseVersion) -> str:
        return f"v{obj.parent.number}" if obj.parent is not None else "—"

    @admin.display(description="files")
    def files(self, obj: ReleaseVersion) -> int:
        return getattr(obj, "n_files", 0)

    @admin.display(description="size")
    def size(self, obj: ReleaseVersion) -> str:
        return human_size(getattr(obj, "n_bytes", 0) or 0)


class ArtefactInline(ReadOnlyInline):
    model = Artefact
    fields = ("kind", "path", "size_text", "sha256")
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="size", ordering="size")
    def size_text(self, obj: Artefact) -> str:
        return format_html('<span title="{} bytes">{}</span>', obj.size, human_size(obj.size))


class ApplyPermissionMixin(_ModelAdmin):
    def has_apply_permission(self, request: HttpRequest) -> bool:
        # Applying, rolling back, packaging and verifying change what a release is: the
        # right the release.* job types need too.
        return request.user.has_perm(services.APPLY_PERMISSION)

    def _queue(self, request: HttpRequest, items, make, what: str) -> None:
        """Run `make(item)` for each item; report jobs created and refusals."""
        created: list[Job] = []
        for item in items:
            try:
                created.append(make(item))
            except (ValidationError, JobError, PermissionDenied) as exc:
                self.message_user(request, f"{item}: {one_line(exc)}", messages.ERROR)
        if created:
            ids = ", ".join(f"#{j.pk}" for j in created)
            self.message_user(
                request,
                ngettext(
                    "Queued %(n)d %(what)s job: %(ids)s.",
                    "Queued %(n)d %(what)s jobs: %(ids)s.",
                    len(created),
                )
                % {"n": len(created), "what": what, "ids": ids},
                messages.SUCCESS,
            )


@admin.register(Release)
class ReleaseAdmin(ApplyPermissionMixin, admin.ModelAdmin):
    list_display = ("slug", "name", "current", "version_count", "updated_at")
    search_fields = ("slug", "name", "description")
    date_hierarchy = "created_at"
    list_select_related = ("current_version",)
    fields = (
        "slug",
        "name",
        "description",
        "current",
        "created_by",
        "created_at",
        "updated_at",
        "history",
    )
    readonly_fields = ("current", "created_by", "created_at", "updated_at", "history")
    inlines = [VersionInline]
    actions = ["apply_latest", "rollback", "package_current", "verify_current"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_versions=Count("versions"))

    @admin.display(description="current version", ordering="current_version__number")
    def current(self, obj: Release) -> str:
        return f"v{obj.current_version.number}" if obj.current_version is not None else "—"

    @admin.display(description="versions", ordering="n_versions")
    def version_count(self, obj: Release) -> int:
        return getattr(obj, "n_versions", 0)

    @admin.display(description="jobs (history)")
    def history(self, obj: Release) -> str:
        if obj.pk is None:
            return "—"
        jobs = list(selectors.release_jobs(obj)[:RECENT_JOBS])
        waiting = job_selectors.waiting_reasons(jobs)
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:jobs_job_change", args=[j.pk]),
                    j.pk,
                    j.job_type,
                    _job_version(j),
                    j.status,
                    j.created_by or "system",
                    j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    waiting.get(j.pk) or (j.error.splitlines()[0][:120] if j.error else ""),
                )
                for j in jobs
            ),
        )
        all_url = reverse("admin:jobs_job_changelist") + f"?release__id__exact={obj.pk}"
        return format_html(
            '<table class="jd-release-jobs"><thead><tr><th>job</th><th>type</th><th>version</th>'
            "<th>status</th>"
            "<th>by</th><th>created</th><th>note</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All jobs of this release</a></p>',
            rows,
            all_url,
        )

    change_form_template = "admin/releases/release/change_form.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def wrap(view):
            return self.admin_site.admin_view(view)

        return [
            path(
                "<path:object_id>/apply/",
                wrap(require_POST(self.apply_view)),
                name="%s_%s_apply" % info,
            ),
            path(
                "<path:object_id>/rollback/",
                wrap(require_POST(self.rollback_view)),
                name="%s_%s_rollback" % info,
            ),
            path(
                "<path:object_id>/new-version/",
                wrap(self.new_version_view),
                name="%s_%s_new_version" % info,
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        release = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if release is not None:
            versions = list(release.versions.order_by("-number").values_list("number", flat=True))
            current = (
                release.current_version.number if release.current_version is not None else None
            )
            extra.update(
                {
                    "can_apply": self.has_apply_permission(request),
                    "can_add_version": request.user.has_perm("releases.add_releaseversion"),
                    "jd_versions": versions,
                    "jd_latest": versions[0] if versions else None,
                    "jd_current": current,
                    "jd_rollback_to": selectors.rollback_target(release),
                }
            )
        return super().change_view(request, object_id, form_url, extra)

    def _release_or_404(self, request, object_id) -> Release:
        release = self.get_object(request, object_id)
        if release is None:
            raise Http404("No such release.")
        return release

    def apply_view(self, request, object_id):
        """Apply version `number`; re-applying the current version asks first."""
        release = self._release_or_404(request, object_id)
        url = reverse("admin:releases_release_change", args=[release.pk])
        if not self.has_apply_permission(request):
            raise PermissionDenied
        try:
            number = int(request.POST.get("number", ""))
        except ValueError:
            self.message_user(request, "Choose a version to apply.", messages.ERROR)
            return HttpResponseRedirect(url)
        current = release.current_version.number if release.current_version else None
        if number == current and request.POST.get("reapply") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"Apply v{number} of {release.slug} again?",
                "opts": self.opts,
                "original": release,
                "number": number,
            }
            return TemplateResponse(request, "admin/releases/release/reapply.html", context)
        try:
            job = services.release_apply(
                release=release, number=number, user=request.user, via="admin"
            )
        except (ValidationError, JobError, PermissionDenied) as exc:
            self.message_user(request, f"Not applied: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(url)
        again = " again" if number == current else ""
        self.message_user(
            request,
            f"Applying {release.slug} v{number}{again}: job #{job.pk} queued.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(url)

    def rollback_view(self, request, object_id):
        release = self._release_or_404(request, object_id)
        url = reverse("admin:releases_release_change", args=[release.pk])
        if not self.has_apply_permission(request):
            raise PermissionDenied
        target = selectors.rollback_target(release)
        try:
            job = services.release_rollback(release=release, user=request.user, via="admin")
        except (ValidationError, JobError, PermissionDenied) as exc:
            self.message_user(request, f"Not rolled back: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(url)
        target = (job.config or {}).get("version", target)
        self.message_user(
            request,
            f"Rolling back {release.slug} to v{target}: job #{job.pk} queued.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(url)

    def new_version_view(self, request, object_id):
        """Create the next version: files (their paths from their names or the manifest),
        an optional manifest, a comment and the parent (default: the latest)."""
        release = self._release_or_404(request, object_id)
        if not request.user.has_perm("releases.add_releaseversion"):
            raise PermissionDenied
        form = NewVersionForm(request.POST or None, request.FILES or None, release=release)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                version = services.version_create(
                    release=release,
                    files=request.FILES.getlist("uploads"),
                    manifest=data["manifest"],
                    comment=data["comment"],
                    parent=int(data["parent"]) if data["parent"] else None,
                    user=request.user,
                    via="admin",
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    field = "uploads" if field in ("files", "paths") else field
                    form.add_error(field if field in form.fields else None, errors)
            else:
                self.message_user(
                    request,
                    f"Version {release.slug} v{version.number} created "
                    f"({len(request.FILES.getlist('uploads'))} files).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:releases_release_change", args=[release.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"New version of {release.slug}",
            "opts": self.opts,
            "original": release,
            "form": form,
        }
        return TemplateResponse(request, "admin/releases/release/new_version.html", context)

    def save_model(self, request, obj: Release, form, change: bool) -> None:
        data = {f: form.cleaned_data[f] for f in ("slug", "name", "description")}
        if change:
            services.release_update(release=obj, user=request.user, via="admin", **data)
        else:
            created = services.release_create(user=request.user, via="admin", **data)
            obj.pk, obj.created_at, obj.created_by = (
                created.pk,
                created.created_at,
                created.created_by,
            )
            obj._state.adding = False

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed - _DELETED_WITH_RELEASE, protected

    def delete_view(self, request, object_id, extra_context=None):
        release = self.get_object(request, object_id)
        if request.method == "POST" and release is not None:
            busy = Job.objects.filter(release=release, status=JobStatus.RUNNING).first()
            if busy is not None:
                self.message_user(
                    request,
                    f"Cannot delete release {release.slug!r}: job #{busy.pk} is running on it.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(
                    reverse("admin:releases_release_change", args=[release.pk])
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj: Release) -> None:
        services.release_delete(release=obj, user=request.user, via="admin")

    def delete_queryset(self, request, queryset: QuerySet[Release]) -> None:
        for release in queryset:
            try:
                services.release_delete(release=release, user=request.user, via="admin")
            except JobError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Apply the latest version", permissions=["apply"])
    def apply_latest(self, request, queryset: QuerySet[Release]) -> None:
        def make(release: Release) -> Job:
            latest = release.versions.order_by("-number").first()
            if latest is None:
                raise ValidationError("it has no versions")
            return services.release_apply(
                release=release, number=latest.number, user=request.user, via="admin"
            )

        self._queue(request, queryset, make, "apply")

    @admin.action(description="Roll back to the previous version", permissions=["apply"])
    def rollback(self, request, queryset: QuerySet[Release]) -> None:
        self._queue(
            request,
            queryset,
            lambda r: services.release_rollback(release=r, user=request.user, via="admin"),
            "rollback",
        )

    @admin.action(description="Package the current (or latest) version", permissions=["apply"])
    def package_current(self, request, queryset: QuerySet[Release]) -> None:
        self._queue(
            request,
            queryset,
            lambda r: services.release_package(release=r, user=request.user, via="admin"),
            "package",
        )

    @admin.action(description="Verify the current (or latest) version", permissions=["apply"])
    def verify_current(self, request, queryset: QuerySet[Release]) -> None:
        self._queue(
            request,
            queryset,
            lambda r: services.release_verify(release=r, user=request.user, via="admin"),
            "verify",
        )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)] if data else []


class NewVersionForm(forms.Form):
    uploads = MultipleFileField(
        label="Files",
        required=False,
        help_text="Each file is stored under its name with its size and SHA-256.",
    )
    manifest = forms.JSONField(
        required=False,
        initial=dict,
        help_text='JSON. A "files" list, if given, must name exactly the uploaded files.',
    )
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    parent = forms.ChoiceField(required=False, help_text="Default: the latest version.")

    def __init__(self, *args, release: Release, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        numbers = release.versions.order_by("-number").values_list("number", flat=True)
        parent = self.fields["parent"]
        assert isinstance(parent, forms.ChoiceField)
        parent.choices = [("", "the latest"), *((str(n), f"v{n}") for n in numbers)]

    def clean_manifest(self):
        return self.cleaned_data.get("manifest") or {}


def _job_version(job: Job) -> str:
    """The version a release job acted on: its result's, else its config's."""
    number = (job.result or {}).get("version") if isinstance(job.result, dict) else None
    if number is None:
        number = (job.config or {}).get("version")
    return f"v{number}" if number is not None else "—"


@admin.register(ReleaseVersion)
class ReleaseVersionAdmin(ReadOnlyAdminMixin, ApplyPermissionMixin, admin.ModelAdmin):
    """Versions are immutable: viewable, never added, changed or deleted here."""

    list_display = (
        "__str__",
        "release",
        "number",
        "parent_number",
        "comment",
        "files",
        "size",
        "created_by",
        "created_at",
    )
    list_filter = ("release",)
    search_fields = ("release__slug", "comment")
    list_select_related = ("release", "parent", "parent__release", "created_by")
    fields = ("release", "number", "parent", "manifest", "comment", "created_by", "created_at")
    readonly_fields = fields
    inlines = [ArtefactInline]
    actions = ["apply", "package", "verify"]

    def get_queryset(self, request):
        files = Q(files__kind=ArtefactKind.FILE)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_files=Count("files", filter=files), n_bytes=Sum("files__size", filter=files)
            )
        )

    @admin.display(description="parent")
    def parent_number(self, obj: ReleaseVersion) -> str:
        return f"v{obj.parent.number}" if obj.parent is not None else "—"

    @admin.display(description="files", ordering="n_files")
    def files(self, obj: ReleaseVersion) -> int:
        return getattr(obj, "n_files", 0)

    @admin.display(description="size", ordering="n_bytes")
    def size(self, obj: ReleaseVersion) -> str:
        return human_size(getattr(obj, "n_bytes", 0) or 0)

    @admin.action(description="Apply (make current)", permissions=["apply"])
    def apply(self, request, queryset: QuerySet[ReleaseVersion]) -> None:
        self._queue(
            request,
            queryset.select_related("release"),
            lambda v: services.release_apply(
                release=v.release, number=v.number, user=request.user, via="admin"
            ),
            "apply",
        )

    @admin.action(description="Package (.tar.gz)", permissions=["apply"])
    def package(self, request, queryset: QuerySet[ReleaseVersion]) -> None:
        self._queue(
            request,
            queryset.select_related("release"),
            lambda v: services.release_package(
                release=v.release, number=v.number, user=request.user, via="admin"
            ),
            "package",
        )

    @admin.action(description="Verify files", permissions=["apply"])
    def verify(self, request, queryset: QuerySet[ReleaseVersion]) -> None:
        self._queue(
            request,
            queryset.select_related("release"),
            lambda v: services.release_verify(
                release=v.release, number=v.number, user=request.user, via="admin"
            ),
            "verify",
        )


@admin.register(Artefact)
class ArtefactAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Artefacts are insert-only: sizes and checksums as recorded at upload."""

    list_display = ("path", "kind", "version", "size_text", "sha256", "created_at")
    list_filter = ("kind", "version__release")
    search_fields = ("path", "sha256", "version__release__slug")
    list_select_related = ("version", "version__release")
    fields = ("version", "kind", "path", "file", "size", "sha256", "created_at")
    readonly_fields = fields

    @admin.display(description="size", ordering="size")
    def size_text(self, obj: Artefact) -> str:
        return format_html('<span title="{} bytes">{}</span>', obj.size, human_size(obj.size))

"""The operator's console for jobs: changelist, actions, job page, "Run a job", dashboard.

A thin caller of `jobs.services` (via="admin"): every action checks the user's
right on each job and turns a refused transition into a message, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import admin_stats, permissions, registry, search, selectors, services
from .admin_site import dashboard_context
from .admin_views import (
    TAGS_FIELD,
    EstimatedCountPaginator,
    JobChangeList,
    ReadOnlyAdminMixin,
    RunJobTypeForm,
    SafeJSONEncoder,
    config_form_class,
    config_from_form,
    log_line,
    pretty_json,
    tags_from_form,
    validate_into_form,
)
from .exceptions import IllegalTransition, one_line
from .inputs import parse_id
from .models import (
    FINISHED_STATUSES,
    AuditEvent,
    Job,
    JobStatus,
    Task,
)
from .selectors import waiting_reasons

MAX_REFUSAL_MESSAGES = 10
LOG_TAIL_DEFAULT = 200
LOG_TAIL_MAX = 1000


def _seconds(value: float | None) -> str:
    """A duration in words a person reads at a glance: 0.4 s, 12 s, 3 min 5 s, 2 h 4 min."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    value = int(value)
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min {value % 60} s"
    return f"{value // 3600} h {value % 3600 // 60} min"


def status_badge(status: str) -> str:
    return format_html('<span class="jd-badge jd-{}">{}</span>', status, status)


def progress_bar(done: int, total: int, percent: int) -> str:
    return format_html(
        '<span class="jd-progress" title="{} of {} tasks" role="progressbar" '
        'aria-valuenow="{}" aria-valuemin="0" aria-valuemax="100">'
        '<span class="jd-progress-fill" style="width: {}%"></span></span>'
        ' <span class="jd-progress-text">{}%</span>',
        done,
        total,
        percent,
        percent,
        percent,
    )


# --- filters ------------------------------------------------------------------------


class JobTypeFilter(admin.SimpleListFilter):
    """Job types from the registry: no DISTINCT over the whole table."""

    title = "type"
    parameter_name = "job_type"

    def lookups(self, request, model_admin):
        return registry.choices(user_creatable_only=False)

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(job_type=self.value())
        return queryset


# --- inlines --------------------------------------------------------------------------


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None) -> bool:
        # Whoever may see the job sees its tasks and audit trail.
        return request.user.has_perm("jobs.view_job") or request.user.has_perm("jobs.change_job")


class TaskInline(ReadOnlyInline):
    model = Task
    fields = ("position", "name", "status_badge", "attempts", "started_at", "duration", "error")
    readonly_fields = fields
    ordering = ("position",)
    verbose_name_plural = "Tasks"

    @admin.display(description="status")
    def status_badge(self, obj: Task) -> str:
        return format_html(
            '<span class="jd-badge jd-{}" data-task="{}">{}</span>',
            obj.status,
            obj.position,
            obj.status,
        )

    @admin.display(description="duration")
    def duration(self, obj: Task) -> str:
        return _seconds(obj.duration_seconds)


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    fields = ("created_at", "action", "actor", "via", "detail_text")
    readonly_fields = fields
    verbose_name = "audit event"
    verbose_name_plural = "Audit trail (who did what, through which door)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="detail")
    def detail_text(self, obj: AuditEvent) -> str:
        if not obj.detail:
            return "—"
        return format_html('<pre class="jd-pre jd-small">{}</pre>', pretty_json(obj.detail))


# --- the job admin ------------------------------------------------------------------------


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job_type",
        "status_badge",
        "progress_bar",
        "release",
        "created_by",
        "created_at",
        "duration",
    )
    list_display_links = ("id", "job_type")
    list_filter = (
        "status",
        JobTypeFilter,
        "release",
        ("created_by", admin.RelatedFieldListFilter),
        "schedule",
        "created_at",
    )
    search_fields = ("=id", "job_type")  # see get_search_results: both use an index
    search_help_text = (
        "A job id (#123), part of a job type's name or label, a config value "
        '(account_id:42, account_id:"42", db.host:db1), tag:NAME, or log:"some text" '
        "(terms combine)."
    )
    date_hierarchy = "created_at"
    list_select_related = ("release", "created_by")
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are a COUNT per filter choice
    paginator = EstimatedCountPaginator
    ordering = ("-id",)
    inlines = (TaskInline, AuditEventInline)
    actions = ("cancel_jobs", "retry_jobs", "submit_drafts", "delete_finished")
    change_form_template = "admin/jobs/job/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("job_type", "release", "schedule", "created_by"),
                    ("priority", "attempts", "max_attempts"),
                    ("created_at", "queued_at", "run_after"),
                    ("started_at", "finished_at", "duration"),
                    ("heartbeat_at", "worker", "cancel_requested_at"),
                    "tags",
                    "waiting",
                )
            },
        ),
        ("Config", {"fields": ("config_pretty",)}),
        ("Result", {"fields": ("result_pretty",)}),
        ("Error", {"fields": ("error_pretty",)}),
        ("Analysis", {"fields": ("analysis_pretty",), "classes": ("collapse",)}),
    )

    class Media:
        css = {"all": ("jobs/admin.css",)}

    # --- permissions -----------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return permissions.visible_jobs(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are created through "Run a job", which validates the config

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # a job record is read-only; its status changes through actions

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # deleting goes through job_delete (the "delete finished" action)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """May act on (own) jobs: anyone who may see the jobs admin."""
        return self.has_view_permission(request)

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.delete_job")

    def get_readonly_fields(self, request, obj=None):
        return [f for fs in self.fieldsets for f in _flatten_fields(fs[1]["fields"])]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """`tag:NAME`, `log:TEXT` and `key:value` (a config value, read as JSON:
        `account_id:42`, `account_id:"42"`, `db.host:x`) terms filter through
        jobs.search's indexes; what is left is an id (the primary key) or text matching
        registered job types (names and labels), filtered as `job_type IN (…)` on its
        index — never a LIKE scan of the table."""
        rest: list[str] = []
        for term in smart_split(search_term.strip()):
            queryset, used = self._search_term(request, queryset, term)
            if not used:
                rest.append(term)
        term = " ".join(rest).strip().lstrip("#")
        if not term:
            return queryset, False
        if term.isascii() and term.isdigit():  # '²'.isdigit() too, but it is no id
            job_id = parse_id(term)
            return (queryset.filter(pk=job_id) if job_id else queryset.none()), False
        needle = term.lower()
        names = {
            jt.name
            for jt in registry.all_types()
            if needle in jt.name.lower() or needle in (jt.label or "").lower()
        }
        return queryset.filter(job_type__in=[*sorted(names), term]), False

    def _search_term(
        self, request: HttpRequest, queryset: QuerySet[Job], term: str
    ) -> tuple[QuerySet[Job], bool]:
        """Apply one `prefix:value` term; (queryset, False) if it is not one."""
        key, sep, value = term.partition(":")
        if not sep or not value or "\x00" in term:
            return queryset, False
        if key == "tag":
            return search.filter_tag(queryset, _unquoted(value)), True
        if key == "log":
            try:
                text = search.check_log_text(_unquoted(value), field="log")
            except ValidationError as exc:
                self.message_user(request, f"Search {term!r}: {one_line(exc)}", messages.WARNING)
                return queryset.none(), True
            return search.filter_log_text(queryset, text), True
        key = key.removeprefix(search.CONFIG_PREFIX)
        try:
            path = search.parse_config_key(key)
            parsed = search.parse_json_value(value, field=key)
        except ValidationError:
            return queryset, False  # not a config term: plain text
        return search.filter_config(queryset, path, parsed), True

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[JobChangeList]:
        return JobChangeList

    # --- columns ---------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Job) -> str:
        badge = status_badge(obj.status)
        # Set per page by JobChangeList.get_results (two queries for the whole page).
        note = getattr(obj, "waiting_note", "")
        return format_html('{}<div class="jd-small">{}</div>', badge, note) if note else badge

    @admin.display(description="waiting")
    def waiting(self, obj: Job) -> str:
        return waiting_reasons([obj]).get(obj.pk) or "—"

    @admin.display(description="progress")
    def progress_bar(self, obj: Job) -> str:
        return progress_bar(obj.progress_done, obj.progress_total, obj.progress)

    @admin.display(description="duration")
    def duration(self, obj: Job) -> str:
        return _seconds(obj.duration_seconds)

    @admin.display(description="config (secrets redacted)")
    def config_pretty(self, obj: Job) -> str:
        return format_html(
            '<pre class="jd-pre">{}</pre>', pretty_json(registry.redact(obj.job_type, obj.config))
        )

    @admin.display(description="result")
    def result_pretty(self, obj: Job) -> str:
        if obj.result is None:
            return "—"
        result = registry.redact_result(obj.job_type, obj.config, obj.result)
        return format_html('<pre class="jd-pre">{}</pre>', pretty_json(result))

    @admin.display(description="error and traceback")
    def error_pretty(self, obj: Job) -> str:
        if not obj.error:
            return "—"
        error = registry.redact_text(obj.job_type, obj.config, obj.error)
        return format_html('<pre class="jd-pre jd-error">{}</pre>', error)

    @admin.display(description="analysis")
    def analysis_pretty(self, obj: Job) -> str:
        if obj.analysis is None:
            return "—"
        analysis = registry.redact_result(obj.job_type, obj.config, obj.analysis)
        return format_html('<pre class="jd-pre">{}</pre>', pretty_json(analysis))

    # --- actions ---------------------------------------------------------------

    def get_actions(
        self, request: HttpRequest, action_location=admin.ActionLocation.CHANGE_LIST
    ) -> dict:
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # would bypass job_delete
        return actions

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        *,
        verb: str,
        allowed: tuple[str, ...],
        call: Callable[[Job], Any],
    ) -> int:
        """Run `call` on each job the user may act on; report refusals one by one."""
        done = 0
        refusals: list[str] = []
        for job in queryset.select_related(None).only("pk", "job_type", "status", "created_by"):
            if not permissions.may_act(request.user, job):
                refusals.append(f"job #{job.pk}: you may only {verb} your own jobs")
                continue
            if job.status not in allowed:
                refusals.append(str(IllegalTransition(job.pk, verb, job.status, allowed=allowed)))
                continue
            try:
                call(job)
            except (IllegalTransition, ValidationError, PermissionDenied) as exc:
                refusals.append(one_line(exc))
                continue
            done += 1
        for text in refusals[:MAX_REFUSAL_MESSAGES]:
            self.message_user(request, f"Refused: {text}.", messages.WARNING)
        if len(refusals) > MAX_REFUSAL_MESSAGES:
            more = len(refusals) - MAX_REFUSAL_MESSAGES
            self.message_user(
                request,
                ngettext("…and %(n)d more job refused.", "…and %(n)d more jobs refused.", more)
                % {"n": more},
                messages.WARNING,
            )
        return done

    @admin.action(description="Cancel selected jobs (pending or running)", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        running: list[int] = []

        def cancel(job: Job) -> None:
            if services.job_cancel(job=job, user=request.user, via="admin").status == "running":
                running.append(job.pk)

        done = self._apply(
            request,
            queryset,
            verb="cancel",
            allowed=(JobStatus.PENDING, JobStatus.RUNNING),
            call=cancel,
        )
        if done:
            text = ngettext("Cancelled %(n)d job.", "Cancelled %(n)d jobs.", done) % {"n": done}
            if running:
                text += " " + ngettext(
                    "%(n)d running job stops at its next step.",
                    "%(n)d running jobs stop at their next step.",
                    len(running),
                ) % {"n": len(running)}
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(description="Retry selected jobs (failed or cancelled)", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = self._apply(
            request,
            queryset,
            verb="retry",
            allowed=(JobStatus.FAILED, JobStatus.CANCELLED),
            call=lambda job: services.job_retry(job=job, user=request.user, via="admin"),
        )
        if done:
            self.message_user(
                request,
                ngettext("Retried %(n)d job.", "Retried %(n)d jobs.", done) % {"n": done},
                messages.SUCCESS,
            )

    @admin.action(description="Submit selected drafts", permissions=["operate"])
    def submit_drafts(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = self._apply(
            request,
            queryset,
            verb="submit",
            allowed=(JobStatus.DRAFT,),
            call=lambda job: services.job_submit(job=job, user=request.user, via="admin"),
        )
        if done:
            self.message_user(
                request,
                ngettext("Submitted %(n)d draft.", "Submitted %(n)d drafts.", done) % {"n": done},
                messages.SUCCESS,
            )

    @admin.action(
        description="Delete selected finished jobs and drafts (with tasks and logs)",
        permissions=["remove"],
    )
    def delete_finished(
        self, request: HttpRequest, queryset: QuerySet[Job]
    ) -> TemplateResponse | None:
        deletable = (*FINISHED_STATUSES, JobStatus.DRAFT)
        if request.POST.get("post") != "yes":
            jobs = list(
                queryset.select_related(None).only("pk", "job_type", "status", "created_by")
            )
            context = {
                **self.admin_site.each_context(request),
                "title": "Delete finished jobs?",
                "opts": self.opts,
                "deletable": [
                    j
                    for j in jobs
                    if j.status in deletable and permissions.may_act(request.user, j)
                ],
                "refused": [
                    j
                    for j in jobs
                    if j.status not in deletable or not permissions.may_act(request.user, j)
                ],
                "queryset": jobs,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "delete_finished",
            }
            return TemplateResponse(
                request, "admin/jobs/job/delete_finished_confirmation.html", context
            )
        done = self._apply(
            request,
            queryset,
            verb="delete",
            allowed=deletable,
            call=lambda job: services.job_delete(job=job, user=request.user, via="admin"),
        )
        if done:
            self.message_user(
                request,
                ngettext("Deleted %(n)d job.", "Deleted %(n)d jobs.", done) % {"n": done},
                messages.SUCCESS,
            )
        return None

    # --- pages -------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def wrap(view: Callable) -> Callable:
            return self.admin_site.admin_view(view)

        return [
            path("run/", wrap(self.run_view), name="%s_%s_run" % info),
            path("dashboard/", wrap(self.dashboard_view), name="%s_%s_dashboard" % info),
            path("stats/", wrap(self.stats_view), name="%s_%s_stats" % info),
            path("<path:object_id>/logs/", wrap(self.logs_view), name="%s_%s_logs" % info),
            path("<path:object_id>/status/", wrap(self.status_view), name="%s_%s_status" % info),
            path(
                "<path:object_id>/cancel/",
                wrap(require_POST(self.cancel_view)),
                name="%s_%s_cancel" % info,
            ),
            path(
                "<path:object_id>/retry/",
                wrap(require_POST(self.retry_view)),
                name="%s_%s_retry" % info,
            ),
            *super().get_urls(),
        ]

    def _visible_job(self, request: HttpRequest, object_id: str) -> Job:
        """The job if the user may see it (get_queryset applies visible_to), else 404."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = int(unquote(object_id))
        except ValueError:
            raise Http404("No such job.") from None
        return get_object_or_404(self.get_queryset(request), pk=pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        extra = {
            "can_manage": job is not None and permissions.may_act(request.user, job),
            "can_cancel": job is not None and job.status in (JobStatus.PENDING, JobStatus.RUNNING),
            "can_retry": job is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
            "log_tail": LOG_TAIL_DEFAULT,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def logs_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Log lines as JSON: `?tail=N` (last N) or `?after=<cursor>` (follow)."""
        job = self._visible_job(request, object_id)
        try:
            after = request.GET.get("after")
            tail = min(int(request.GET.get("tail", LOG_TAIL_DEFAULT)), LOG_TAIL_MAX)
            if after not in (None, ""):
                lines = selectors.log_after(job.pk, int(after), limit=LOG_TAIL_MAX)
            else:
                lines = selectors.log_tail(job.pk, tail)
        except ValueError:
            return JsonResponse(
                {"error": "after and tail must be integers"}, status=400, encoder=SafeJSONEncoder
            )
        cursor = lines[-1].pk if lines else int(after or 0)
        return JsonResponse(
            {
                "job": job.pk,
                "status": job.status,
                "cursor": cursor,
                "lines": [log_line(line) for line in lines],
            },
            encoder=SafeJSONEncoder,
        )

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The job's live facts: status, progress, duration, its tasks' statuses."""
        job = self._visible_job(request, object_id)
        tasks = job.tasks.order_by("position").only(
            "position", "name", "status", "started_at", "finished_at", "job_id"
        )
        return JsonResponse(
            {
                "id": job.pk,
                "status": job.status,
                "progress": job.progress,
                "progress_done": job.progress_done,
                "progress_total": job.progress_total,
                "duration": _seconds(job.duration_seconds),
                "finished": job.is_finished,
                "cancel_requested": job.cancel_requested_at is not None,
                "can_cancel": job.status in (JobStatus.PENDING, JobStatus.RUNNING),
                "can_retry": job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
                "tasks": [
                    {
                        "position": t.position,
                        "name": t.name,
                        "status": t.status,
                        "duration": _seconds(t.duration_seconds),
                    }
                    for t in tasks
                ],
            },
            encoder=SafeJSONEncoder,
        )

    def _button(
        self, request: HttpRequest, object_id: str, verb: str, call: Callable[[Job], Job]
    ) -> HttpResponseRedirect:
        job = self._visible_job(request, object_id)
        url = reverse("admin:jobs_job_change", args=[job.pk], current_app=self.admin_site.name)
        if not permissions.may_act(request.user, job):
            self.message_user(
                request, f"Refused: you may only {verb} your own jobs.", messages.ERROR
            )
            return HttpResponseRedirect(url)
        try:
            job = call(job)
        except (IllegalTransition, ValidationError, PermissionDenied) as exc:
            self.message_user(request, f"Refused: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(url)
        self.log_change(request, job, f"{verb} via admin")
        return HttpResponseRedirect(url)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        def cancel(job: Job) -> Job:
            job = services.job_cancel(job=job, user=request.user, via="admin")
            if job.status == JobStatus.RUNNING:
                self.message_user(
                    request,
                    f"Cancel requested: job #{job.pk} stops at its next step.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"Job #{job.pk} cancelled.", messages.SUCCESS)
            return job

        return self._button(request, object_id, "cancel", cancel)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        def retry(job: Job) -> Job:
            job = services.job_retry(job=job, user=request.user, via="admin")
            self.message_user(request, f"Job #{job.pk} queued again.", messages.SUCCESS)
            return job

        return self._button(request, object_id, "retry", retry)

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """ "Run a job": choose a type, fill its generated form, analyse, confirm."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        source = request.POST if request.method == "POST" else request.GET
        # Only the types this user may create are offered (and accepted).
        type_form = RunJobTypeForm(source or None, user=request.user)
        job_type = None
        config_form = None
        analysis: dict | None = None
        analysis_error = ""
        if type_form.is_bound and type_form.is_valid():
            job_type = registry.get(type_form.cleaned_data["job_type"])
            form_class = config_form_class(job_type)
            if request.method == "POST":
                config_form = form_class(request.POST)
                if config_form.is_valid():
                    config = validate_into_form(
                        job_type, config_form, config_from_form(job_type, config_form)
                    )
                    release = config_form.cleaned_data.get("release")
                    if config is not None and "_run" in request.POST:
                        response = self._run_create(request, job_type, config_form, config)
                        if response is not None:
                            return response
                    elif config is not None and not permissions.may_create(
                        request.user, job_type, release=release, config=config
                    ):
                        config_form.add_error(None, str(permissions.JobTypeDenied(job_type)))
                    elif config is not None:
                        try:
                            analysis = job_type.analyze(config, release)
                            analysis = registry.redact_result(job_type.name, config, analysis)
                        except Exception as exc:  # an analysis that crashes is shown
                            analysis_error = registry.redact_text(
                                job_type.name, config, f"{type(exc).__name__}: {exc}"
                            )
            else:
                config_form = form_class()
        context = {
            **self.admin_site.each_context(request),
            "title": "Run a job",
            "subtitle": job_type.label if job_type else None,
            "opts": self.opts,
            "type_form": type_form,
            "job_type": job_type,
            "config_form": config_form,
            "analysis": analysis,
            "analysis_json": pretty_json(analysis) if analysis is not None else "",
            "analysis_error": analysis_error,
            "is_popup": IS_POPUP_VAR in request.GET,
            "has_view_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/jobs/job/run.html", context)

    def _run_create(
        self, request: HttpRequest, job_type: registry.JobType, form, config: dict
    ) -> HttpResponse | None:
        try:
            job = services.job_create(
                job_type=job_type.name,
                config=config,
                user=request.user,
                release=form.cleaned_data.get("release"),
                priority=form.cleaned_data.get("priority") or 0,
                tags=tags_from_form(form),
                via="admin",
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = TAGS_FIELD if field == "tags" else field
                form.add_error(target if target in form.fields else None, errors)
            return None
        except PermissionDenied as exc:
            self.message_user(request, f"Refused: {exc}.", messages.ERROR)
            form.add_error(None, str(exc))
            return None
        self.log_addition(request, job, "Created via Run a job")
        self.message_user(
            request, f"Job #{job.pk} ({job.job_type}) created and queued.", messages.SUCCESS
        )
        return HttpResponseRedirect(
            reverse("admin:jobs_job_change", args=[job.pk], current_app=self.admin_site.name)
        )

    def stats_view(self, request: HttpRequest) -> TemplateResponse:
        """Statistics per job type, queue or schedule as charts (jobs.admin_stats)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return admin_stats.stats_view(self, request)

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """The dashboard's figures as an HTML fragment (the index page re-fetches it)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request, "admin/jobs/dashboard_figures.html", dashboard_context(request)
        )


def _unquoted(value: str) -> str:
    """`"disk full"` → `disk full` (smart_split keeps a term's quotes)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return unescape_string_literal(value)
    return value


def _flatten_fields(fields) -> list[str]:
    out: list[str] = []
    for f in fields:
        out.extend(f if isinstance(f, tuple | list) else [f])
    return out


from . import admin_templates  # noqa: E402, F401  (registers the job templates' admin)

"""The operator's console for jobs: changelist, actions, job page, "Run a job", dashboard.

A thin caller of `jobs.services` (via="admin"): every action checks the user's
right on each job and turns a refused transition into a message, never a 500.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR, IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import (
    admin_stats,
    admin_workflows,
    permissions,
    queues,
    registry,
    search,
    selectors,
    services,
)
from .admin_pages import detail_html, plain_timestamp, timestamp
from .admin_site import dashboard_context
from .admin_views import (
    RUN_FIELDS,
    STATE_PARAM,
    STATES,
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
    state_filter,
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
    LogLevel,
    Task,
)
from .selectors import waiting_reasons

LIST_REFRESH_SECONDS = 5  # the job list re-reads itself this often (opt-out box)
RETRY_FAILED_MAX = 1000  # failed jobs "retry all failed in this filter" takes at once
MAX_IDS_SHOWN = 5  # refused jobs named per reason in an action's summary line
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


class StateFilter(admin.SimpleListFilter):
    """The state tabs above the list (running, waiting, scheduled, retrying, …)."""

    title = "state"
    parameter_name = STATE_PARAM

    def lookups(self, request, model_admin):
        return [(state, label) for state, label, _help in STATES]

    def queryset(self, request, queryset):
        condition = state_filter(self.value() or "")
        return queryset.filter(condition) if condition is not None else queryset


class QueueFilter(admin.SimpleListFilter):
    """The known queues (jobs.queues): no DISTINCT over the whole table."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(q, q) for q in sorted(queues.known_queues())]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


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
        return detail_html(obj.detail)


# --- the job admin ------------------------------------------------------------------------


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job_type",
        "status_badge",
        "progress_bar",
        "queue",
        "release",
        "created_by",
        "created_when",
        "duration",
    )
    list_display_links = ("id", "job_type")
    list_filter = (
        StateFilter,
        "status",
        QueueFilter,
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
    # The tasks are a paged panel of the job page (selectors.task_page), not an inline:
    # a 1,000-task job's page stays small.
    inlines = (AuditEventInline,)
    actions = (
        "cancel_jobs",
        "retry_jobs",
        "run_now",
        "submit_drafts",
        "discard_drafts",
        "delete_finished",
    )
    change_form_template = "admin/jobs/job/change_form.html"
    change_list_template = "admin/jobs/job/change_list.html"
    fieldsets = (
        (
            None,
            {
                # Every field that changes is refreshed by the page (status_view's
                # "fields"): the methods' names are the keys.
                "fields": (
                    ("job_type", "queue", "release", "schedule", "created_by"),
                    ("priority", "attempts_text", "worker_text", "timeout_seconds"),
                    ("unique_key", "lock"),
                    ("created_when", "queued_when", "run_after_when"),
                    ("started_when", "finished_when", "duration"),
                    ("heartbeat_when", "cancel_requested_when"),
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

    @admin.display(description="attempts")
    def attempts_text(self, obj: Job) -> str:
        return f"{obj.attempts} of {obj.max_attempts}"

    @admin.display(description="worker")
    def worker_text(self, obj: Job) -> str:
        return obj.worker or "—"

    @admin.display(description="created", ordering="created_at")
    def created_when(self, obj: Job) -> str:
        return timestamp(obj.created_at)

    @admin.display(description="queued")
    def queued_when(self, obj: Job) -> str:
        return timestamp(obj.queued_at)

    @admin.display(description="run after")
    def run_after_when(self, obj: Job) -> str:
        return timestamp(obj.run_after)

    @admin.display(description="started")
    def started_when(self, obj: Job) -> str:
        return timestamp(obj.started_at)

    @admin.display(description="finished")
    def finished_when(self, obj: Job) -> str:
        return timestamp(obj.finished_at)

    @admin.display(description="heartbeat")
    def heartbeat_when(self, obj: Job) -> str:
        return timestamp(obj.heartbeat_at)

    @admin.display(description="cancel requested")
    def cancel_requested_when(self, obj: Job) -> str:
        return timestamp(obj.cancel_requested_at)

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
    ) -> tuple[int, dict[str, list[int]]]:
        """Run `call` on each job the user may act on; return how many were done and
        the refused ones grouped by reason ({"already finished": [ids]})."""
        done = 0
        refused: dict[str, list[int]] = {}
        for job in queryset.select_related(None).only(
            "pk", "job_type", "status", "created_by", "queue", "run_after"
        ):
            if not permissions.may_act(request.user, job):
                refused.setdefault("not yours", []).append(job.pk)
                continue
            if job.status not in allowed:
                if verb == "cancel" and job.status in FINISHED_STATUSES:
                    reason = "already finished"
                else:
                    reason = "drafts" if job.status == JobStatus.DRAFT else str(job.status)
                refused.setdefault(reason, []).append(job.pk)
                continue
            try:
                call(job)
            except IllegalTransition as exc:
                refused.setdefault(str(exc.current or "gone"), []).append(job.pk)
                continue
            except (ValidationError, PermissionDenied) as exc:
                # The job's number is in the list of ids: keep the reason general.
                refused.setdefault(one_line(exc).replace(f"job #{job.pk}: ", ""), []).append(job.pk)
                continue
            done += 1
        return done, refused

    def _report(self, request: HttpRequest, head: str, refused: dict[str, list[int]]) -> None:
        """One summary line: what was done, then each reason for refusing with its jobs
        ("Cancelled 1 job. Refused 9: 9 already finished (#2, #3, #4, #5, #6 and 4 more).")."""
        if not refused:
            self.message_user(request, head, messages.SUCCESS)
            return
        total = sum(len(ids) for ids in refused.values())
        parts = []
        for reason, ids in sorted(refused.items(), key=lambda item: -len(item[1])):
            ids = sorted(ids)
            shown = ", ".join(f"#{pk}" for pk in ids[:MAX_IDS_SHOWN])
            if len(ids) > MAX_IDS_SHOWN:
                shown += f" and {len(ids) - MAX_IDS_SHOWN} more"
            parts.append(f"{len(ids)} {reason} ({shown})")
        self.message_user(request, f"{head} Refused {total}: {'; '.join(parts)}.", messages.WARNING)

    @staticmethod
    def _count(done: int, one: str, many: str) -> str:
        return ngettext(one, many, done) % {"n": done} if done else many.replace("%(n)d", "no")

    @admin.action(description="Cancel selected jobs (pending or running)", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        running: list[int] = []

        def cancel(job: Job) -> None:
            if services.job_cancel(job=job, user=request.user, via="admin").status == "running":
                running.append(job.pk)

        done, refused = self._apply(
            request,
            queryset,
            verb="cancel",
            allowed=(JobStatus.PENDING, JobStatus.RUNNING),
            call=cancel,
        )
        text = self._count(done, "Cancelled %(n)d job.", "Cancelled %(n)d jobs.")
        if running:
            text += " " + ngettext(
                "%(n)d running job stops at its next step.",
                "%(n)d running jobs stop at their next step.",
                len(running),
            ) % {"n": len(running)}
        self._report(request, text, refused)

    @admin.action(description="Retry selected jobs (failed or cancelled)", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = self._apply(
            request,
            queryset,
            verb="retry",
            allowed=(JobStatus.FAILED, JobStatus.CANCELLED),
            call=lambda job: services.job_retry(job=job, user=request.user, via="admin"),
        )
        self._report(
            request, self._count(done, "Retried %(n)d job.", "Retried %(n)d jobs."), refused
        )

    @admin.action(description="Submit selected drafts", permissions=["operate"])
    def submit_drafts(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = self._apply(
            request,
            queryset,
            verb="submit",
            allowed=(JobStatus.DRAFT,),
            call=lambda job: services.job_submit(job=job, user=request.user, via="admin"),
        )
        self._report(
            request, self._count(done, "Submitted %(n)d draft.", "Submitted %(n)d drafts."), refused
        )

    @admin.action(description="Discard selected drafts", permissions=["operate"])
    def discard_drafts(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = self._apply(
            request,
            queryset,
            verb="discard",
            allowed=(JobStatus.DRAFT,),
            call=lambda job: services.job_discard(job=job, user=request.user, via="admin"),
        )
        self._report(
            request, self._count(done, "Discarded %(n)d draft.", "Discarded %(n)d drafts."), refused
        )

    @admin.action(description="Run selected delayed jobs now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = self._apply(
            request,
            queryset,
            verb="run now",
            allowed=(JobStatus.PENDING,),
            call=lambda job: services.job_run_now(job=job, user=request.user, via="admin"),
        )
        self._report(
            request,
            self._count(done, "Started %(n)d delayed job now.", "Started %(n)d delayed jobs now."),
            refused,
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
        done, refused = self._apply(
            request,
            queryset,
            verb="delete",
            allowed=deletable,
            call=lambda job: services.job_delete(job=job, user=request.user, via="admin"),
        )
        self._report(
            request, self._count(done, "Deleted %(n)d job.", "Deleted %(n)d jobs."), refused
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
            path("<path:object_id>/retry/", wrap(self.retry_view), name="%s_%s_retry" % info),
            path(
                "<path:object_id>/submit/",
                wrap(require_POST(self.submit_view)),
                name="%s_%s_submit" % info,
            ),
            path(
                "<path:object_id>/discard/",
                wrap(require_POST(self.discard_view)),
                name="%s_%s_discard" % info,
            ),
            path(
                "<path:object_id>/run-now/",
                wrap(require_POST(self.run_now_view)),
                name="%s_%s_run_now" % info,
            ),
            path(
                "retry-failed/",
                wrap(require_POST(self.retry_failed_view)),
                name="%s_%s_retry_failed" % info,
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

    def changelist_view(self, request, extra_context=None):
        extra = {
            "can_operate": self.has_operate_permission(request),
            "jd_filters": request.GET.urlencode(),
            "jd_refresh_seconds": LIST_REFRESH_SECONDS,
            # The list's columns (Duration last) need the width at 1,280 px: no app sidebar.
            "is_nav_sidebar_enabled": False,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        extra: dict[str, Any] = {"log_tail": LOG_TAIL_DEFAULT, **(extra_context or {})}
        if job is not None:
            live = self._live(request, job)
            extra.update(
                {
                    "can_manage": permissions.may_act(request.user, job),
                    "jd_flags": live["flags"],
                    "jd_tasks": live["tasks_page"],
                    "jd_tasks_rows": live["tasks"],
                    "log_levels": [(int(level), level.label) for level in LogLevel],
                    "jd_links": admin_workflows.job_links(job, request.user, self.admin_site.name),
                }
            )
        return super().change_view(request, object_id, form_url, extra)

    def history_view(self, request, object_id, extra_context=None):
        """Django's History (its LogEntry, empty for jobs made through the API or the CLI)
        is the audit page of this job: every door's actions."""
        job = self._visible_job(request, object_id)
        url = reverse("admin:jobs_auditevent_changelist", current_app=self.admin_site.name)
        return HttpResponseRedirect(f"{url}?target_type=jobs.job&target_id={job.pk}")

    def logs_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Log lines as JSON: `?tail=N` (last N) or `?after=<cursor>` (follow); `level`
        (the lowest shown: 10 debug … 40 error) and `q` (text the line contains) filter."""
        job = self._visible_job(request, object_id)
        search = (request.GET.get("q") or "").strip()[:200] or None
        try:
            after = request.GET.get("after")
            tail = min(int(request.GET.get("tail", LOG_TAIL_DEFAULT)), LOG_TAIL_MAX)
            level = int(request.GET.get("level") or 0) or None
            if after not in (None, ""):
                lines = selectors.log_after(
                    job.pk, int(after), limit=LOG_TAIL_MAX, level=level, search=search
                )
            else:
                lines = selectors.log_tail(job.pk, tail, level=level, search=search)
        except ValueError:
            return JsonResponse(
                {"error": "after, tail and level must be integers"},
                status=400,
                encoder=SafeJSONEncoder,
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

    def _live(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        """Everything on the job page that changes, as JSON-ready values.

        The error, result and config are sent only when they differ from what the
        page has (it sends their hashes back: `eh`, `rh`, `ch`), and the tasks one
        page at a time (`tp`: a page number, or the page of the running task), so a
        poll of a 1,000-task job stays a few kilobytes.
        """
        known = request.GET
        now = timezone.now()
        try:
            page: int | None = int(known["tp"]) if known.get("tp", "auto") != "auto" else None
        except ValueError:
            page = None
        tasks_page = selectors.task_page(job, page)
        waiting = waiting_reasons([job], now).get(job.pk) if job.status == "pending" else None

        def when(value) -> list[str] | None:
            return [plain_timestamp(value), value.isoformat()] if value else None

        def blob(key: str, text: str) -> dict[str, str]:
            digest = format(zlib.crc32(text.encode()), "08x")
            return {"hash": digest, "text": text} if known.get(key) != digest else {"hash": digest}

        error = registry.redact_text(job.job_type, job.config, job.error) if job.error else ""
        result = (
            pretty_json(registry.redact_result(job.job_type, job.config, job.result))
            if job.result is not None
            else ""
        )
        config = pretty_json(registry.redact(job.job_type, job.config))
        manage = permissions.may_act(request.user, job)
        delayed = (
            job.status == JobStatus.PENDING and job.run_after is not None and job.run_after > now
        )
        flags = {
            "can_cancel": manage and job.status in (JobStatus.PENDING, JobStatus.RUNNING),
            "can_retry": manage and job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
            "can_submit": manage and job.status == JobStatus.DRAFT,
            "can_discard": manage and job.status == JobStatus.DRAFT,
            "can_run_now": manage and delayed,
        }
        return {
            "id": job.pk,
            "status": job.status,
            "progress": job.progress,
            "progress_done": job.progress_done,
            "progress_total": job.progress_total,
            "duration": _seconds(job.duration_seconds),
            "finished": job.is_finished,
            "cancel_requested": job.cancel_requested_at is not None,
            **flags,
            "flags": flags,
            "fields": {
                "attempts_text": f"{job.attempts} of {job.max_attempts}",
                "worker_text": job.worker or "—",
                "duration": _seconds(job.duration_seconds),
                "waiting": waiting or "—",
            },
            "times": {
                "queued_when": when(job.queued_at),
                "run_after_when": when(job.run_after),
                "started_when": when(job.started_at),
                "finished_when": when(job.finished_at),
                "heartbeat_when": when(job.heartbeat_at),
                "cancel_requested_when": when(job.cancel_requested_at),
            },
            "error": blob("eh", error),
            "result": blob("rh", result),
            "config": blob("ch", config),
            "tasks_page": {k: v for k, v in tasks_page.items() if k != "rows"},
            "tasks": [
                {
                    "position": t.position,
                    "name": t.name,
                    "status": t.status,
                    "attempts": t.attempts,
                    "started": plain_timestamp(t.started_at) if t.started_at else "—",
                    "duration": _seconds(t.duration_seconds),
                    # The last line of a traceback names the exception.
                    "error": _last_line(t.error)[:200],
                }
                for t in tasks_page["rows"]
            ],
        }

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Every changing fact of the job page (see _live), polled by job_live.js."""
        job = self._visible_job(request, object_id)
        data = self._live(request, job)
        data.pop("flags")
        if request.GET.get("deps"):  # sent by a page that lists parents or children
            data["deps"] = admin_workflows.link_statuses(job)
        return JsonResponse(data, encoder=SafeJSONEncoder)

    def _button(
        self,
        request: HttpRequest,
        object_id: str,
        verb: str,
        call: Callable[[Job], Job],
        *,
        raise_: bool = False,
    ) -> HttpResponseRedirect:
        """Run `call` on the job; a refusal comes back as a message (or is raised, for
        a form that shows it)."""
        job = self._visible_job(request, object_id)
        url = self._change_url(job)
        if not permissions.may_act(request.user, job):
            if raise_:
                raise PermissionDenied(f"you may only {verb} your own jobs")
            self.message_user(
                request, f"Refused: you may only {verb} your own jobs.", messages.ERROR
            )
            return HttpResponseRedirect(url)
        try:
            job = call(job)
        except (IllegalTransition, ValidationError, PermissionDenied) as exc:
            if raise_:
                raise
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

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST alone: retry as it was. GET: the job type's generated form, prefilled
        with the job's config (secrets masked); POSTed with `_config`, the job is retried
        with the corrected config, validated by the type's serializer (job_retry)."""
        job = self._visible_job(request, object_id)
        if request.method == "POST" and "_config" not in request.POST:
            return self._button(request, object_id, "retry", self._retry_call(request, None))
        if request.method not in ("GET", "POST"):
            return HttpResponse(status=405)
        try:
            job_type = registry.get(job.job_type)
        except ValidationError as exc:
            self.message_user(request, f"Refused: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(self._change_url(job))
        form_class = config_form_class(job_type, config_only=True)
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid():
                config = config_from_form(job_type, form)
                try:
                    return self._button(
                        request, object_id, "retry", self._retry_call(request, config), raise_=True
                    )
                except ValidationError as exc:
                    for field, errors in exc.message_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                except (IllegalTransition, PermissionDenied) as exc:
                    form.add_error(None, one_line(exc))
        else:
            form = form_class(initial=registry.redact(job.job_type, job.config))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Retry job #{job.pk} with a corrected config",
            "subtitle": job_type.label,
            "opts": self.opts,
            "original": job,
            "config_form": form,
            "can_retry": job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
            and permissions.may_act(request.user, job),
            "has_view_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/jobs/job/retry.html", context)

    def _retry_call(self, request: HttpRequest, config: dict | None) -> Callable[[Job], Job]:
        def retry(job: Job) -> Job:
            job = services.job_retry(job=job, user=request.user, via="admin", config=config)
            note = " with the corrected config" if config is not None else ""
            self.message_user(request, f"Job #{job.pk} queued again{note}.", messages.SUCCESS)
            return job

        return retry

    def submit_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        def submit(job: Job) -> Job:
            job = services.job_submit(job=job, user=request.user, via="admin")
            self.message_user(request, f"Draft #{job.pk} submitted: it runs.", messages.SUCCESS)
            return job

        return self._button(request, object_id, "submit", submit)

    def discard_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        job = self._visible_job(request, object_id)
        try:
            services.job_discard(job=job, user=request.user, via="admin")
        except (IllegalTransition, PermissionDenied) as exc:
            self.message_user(request, f"Refused: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(self._change_url(job))
        self.message_user(request, f"Draft #{job.pk} discarded.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:jobs_job_changelist", current_app=self.admin_site.name)
        )

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        def run_now(job: Job) -> Job:
            job = services.job_run_now(job=job, user=request.user, via="admin")
            self.message_user(request, f"Job #{job.pk} starts now.", messages.SUCCESS)
            return job

        return self._button(request, object_id, "run now", run_now)

    def retry_failed_view(self, request: HttpRequest) -> HttpResponseRedirect:
        """ "Retry all failed in this filter": the failed jobs of the changelist as
        filtered by the query string (at most RETRY_FAILED_MAX at a time)."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        changelist = reverse("admin:jobs_job_changelist", current_app=self.admin_site.name)
        query = request.POST.get("_changelist_filters", "")
        back = f"{changelist}?{query}" if query else changelist
        cl_request = _as_get(request, query)
        try:
            cl = self.get_changelist_instance(cl_request)
        except IncorrectLookupParameters:
            self.message_user(request, "Refused: the filter could not be read.", messages.ERROR)
            return HttpResponseRedirect(back)
        failed = cl.get_queryset(cl_request).filter(status=JobStatus.FAILED)
        ids = list(failed.order_by("pk").values_list("pk", flat=True)[: RETRY_FAILED_MAX + 1])
        more = len(ids) > RETRY_FAILED_MAX
        done, refused = self._apply(
            request,
            Job.objects.filter(pk__in=ids[:RETRY_FAILED_MAX]),
            verb="retry",
            allowed=(JobStatus.FAILED,),
            call=lambda job: services.job_retry(job=job, user=request.user, via="admin"),
        )
        head = self._count(done, "Retried %(n)d failed job.", "Retried %(n)d failed jobs.")
        if more:
            head += f" More than {RETRY_FAILED_MAX} matched: run it again for the rest."
        self._report(request, head, refused)
        return HttpResponseRedirect(back)

    def _change_url(self, job: Job) -> str:
        return reverse("admin:jobs_job_change", args=[job.pk], current_app=self.admin_site.name)

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
                queue=form.cleaned_data.get("run_queue") or "default",
                unique_key=form.cleaned_data.get("run_unique_key") or None,
                timeout_seconds=form.cleaned_data.get("timeout_seconds"),
                tags=tags_from_form(form),
                depends_on=form.cleaned_data.get("run_depends_on") or None,
                on_parent_failure=form.cleaned_data.get("run_on_parent_failure") or None,
                via="admin",
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                field = RUN_FIELDS.get(field, field)
                target = TAGS_FIELD if field == "tags" else field
                form.add_error(target if target in form.fields else None, errors)
            return None
        except PermissionDenied as exc:
            self.message_user(request, f"Refused: {exc}.", messages.ERROR)
            form.add_error(None, str(exc))
            return None
        if job.existing:
            self.message_user(
                request,
                f"Job #{job.pk} ({job.job_type}) is already {job.status} with unique key "
                f"{job.unique_key!r}: nothing new was created.",
                messages.WARNING,
            )
            return HttpResponseRedirect(
                reverse("admin:jobs_job_change", args=[job.pk], current_app=self.admin_site.name)
            )
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


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _as_get(request: HttpRequest, query: str) -> HttpRequest:
    """A GET copy of `request` with `query` as its query string (the changelist's filter)."""
    from django.http import QueryDict

    clone = copy.copy(request)
    clone.method = "GET"
    clone.GET = QueryDict(query)
    clone.POST = QueryDict()
    return clone


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


# The audit page and the job templates' admin register themselves (the workflows'
# too: admin_workflows, imported above).
from . import admin_audit, admin_templates  # noqa: E402, F401

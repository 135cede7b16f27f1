"""Export and import in the admin: an "Export selected" action and an import page, shared
by every changelist of an exportable kind (templates, schedules). Thin over jobs.exchange:
the page shows the diff of a dry run, then imports the same file on confirmation."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import exchange

MAX_UPLOAD = 2 * 1024 * 1024


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A JSON or YAML export (manage.py schedules export).")


class ExchangeAdminMixin(admin.ModelAdmin):
    """Add to a ModelAdmin whose model is an exchange kind (`exchange_kind` = its name)."""

    exchange_kind: ClassVar[str]
    change_list_template = "admin/jobs/exchange/change_list.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="%s_%s_import" % info,
            ),
            *super().get_urls(),
        ]

    def has_reveal_permission(self, request: HttpRequest) -> bool:
        return exchange.may_reveal(request.user)

    @admin.action(description="Export selected as JSON (secrets masked)", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self._export(request, queryset, "json", reveal=False)

    @admin.action(description="Export selected as YAML (secrets masked)", permissions=["view"])
    def export_yaml(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self._export(request, queryset, "yaml", reveal=False)

    @admin.action(description="Export selected as JSON with secrets", permissions=["reveal"])
    def export_with_secrets(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self._export(request, queryset, "json", reveal=True)

    exchange_actions = ("export_json", "export_yaml", "export_with_secrets")

    def _export(
        self, request: HttpRequest, queryset: QuerySet, fmt: str, *, reveal: bool
    ) -> HttpResponse:
        doc = exchange.export_document(
            user=request.user,
            kind_names=[self.exchange_kind],
            reveal_secrets=reveal,
            querysets={self.exchange_kind: queryset},
        )
        response = HttpResponse(
            exchange.dump(doc, fmt),
            content_type="application/yaml" if fmt == "yaml" else "application/json",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="jobdeck-{self.exchange_kind}.{fmt}"'
        )
        return response

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload → a dry run's diff → confirm (the same text, kept in the form)."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        result = None
        refused: list[str] = []
        text = ""
        form = ImportForm()
        if request.method == "POST":
            if "confirm" in request.POST:
                text = request.POST.get("document", "")
            else:
                form = ImportForm(request.POST, request.FILES)
                if form.is_valid():
                    upload = form.cleaned_data["file"]
                    if upload.size > MAX_UPLOAD:
                        form.add_error("file", "At most 2 MB.")
                    else:
                        try:
                            text = upload.read().decode("utf-8")
                        except UnicodeDecodeError:
                            form.add_error("file", "Not UTF-8 text.")
            if text:
                confirm = "confirm" in request.POST
                try:
                    result = exchange.import_document(
                        exchange.parse(text), user=request.user, via="admin", dry_run=not confirm
                    )
                except exchange.ImportRefused as exc:
                    refused = exc.summary()
                if result is not None and confirm:
                    counts = result.counts()
                    self.message_user(
                        request,
                        f"Imported: {counts['create']} created, {counts['update']} updated, "
                        f"{counts['unchanged']} unchanged.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse(
                            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                            current_app=self.admin_site.name,
                        )
                    )
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Import schedules and templates",
            "opts": self.opts,
            "form": form,
            "result": result,
            "lines": result.lines() if result is not None else [],
            "refused": refused,
            "document": text if result is not None else "",
        }
        return TemplateResponse(request, "admin/jobs/exchange/import.html", context)

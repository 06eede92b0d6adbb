from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.views import pages as api_pages
from api.views import webhook_pages
from pipeline_crm import health

urlpatterns = [
    # Without a trailing slash, as probes spell them: a redirect would count as healthy.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/tokens/", api_pages.token_list, name="api_tokens"),
    path("accounts/tokens/new/", api_pages.create_token, name="api_token_create"),
    path(
        "accounts/tokens/<int:token_id>/revoke/", api_pages.revoke_token, name="api_token_revoke"
    ),
    path("accounts/webhooks/", webhook_pages.webhook_list, name="api_webhooks"),
    path("accounts/webhooks/new/", webhook_pages.webhook_create, name="api_webhook_create"),
    path("accounts/webhooks/<int:endpoint_id>/", webhook_pages.webhook_detail, name="api_webhook"),
    path(
        "accounts/webhooks/<int:endpoint_id>/toggle/",
        webhook_pages.webhook_toggle,
        name="api_webhook_toggle",
    ),
    path(
        "accounts/webhooks/<int:endpoint_id>/delete/",
        webhook_pages.webhook_delete,
        name="api_webhook_delete",
    ),
    path(
        "accounts/webhooks/deliveries/<int:delivery_id>/redeliver/",
        webhook_pages.webhook_redeliver,
        name="api_webhook_redeliver",
    ),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("settings/automations/", include("automations.urls")),
    path("settings/", include("stages.urls")),
    path("contacts/", include("contacts.urls")),
    path("reports/", include("reports.urls")),
    path("import/", include("imports.urls")),
    path("api/v1/", include("api.urls")),
    path("", include("deals.urls")),
]

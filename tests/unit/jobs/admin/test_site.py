"""The admin says Jobdeck, and its "View site" leads to a landing page that leads everywhere."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client

from jobs.admin_site import JobdeckAdminSite
from tests.support.admin_helpers import client_for

pytestmark = pytest.mark.django_db


def test_the_admin_site_is_jobdeck_s_own():
    assert isinstance(admin.site, JobdeckAdminSite)
    assert (admin.site.site_header, admin.site.site_title) == ("Jobdeck", "Jobdeck")


def test_the_admin_pages_say_jobdeck_and_view_site_leads_to_the_landing_page(superuser):
    login = Client().get("/admin/login/").content.decode()
    assert "<title>Log in | Jobdeck</title>" in login
    assert "Django administration" not in login

    index = client_for(superuser).get("/admin/").content.decode()
    assert "Jobdeck administration" in index and "Django administration" not in index
    view_site = re.search(r'<a href="([^"]*)">View site</a>', index)
    assert view_site and view_site.group(1) == "/"


def test_the_landing_page_links_the_admin_the_api_its_docs_and_health():
    client = Client()
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1" in html and "Jobdeck" in html
    links = re.findall(r'<li><a href="([^"]+)">', html)
    assert links == ["/admin/", "/api/", "/api/docs/", "/api/schema/", "/api/health/"]
    for url in links:
        # The admin sends an anonymous visitor to its login page; health is 503 without
        # a cluster; everything else answers.
        assert client.get(url, follow=True).status_code in (200, 503), url

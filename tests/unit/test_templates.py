"""The built-in template catalog and its rendering."""

from __future__ import annotations

import pytest

from core.templates import TemplateError, builtin_catalog, parse_build_settings, render

VALUES = {
    "app_name": "Shop",
    "app_slug": "shop",
    "tenant": "acme",
    "subdomain": "shop.apps",
    "port": "8080",
}


def test_catalog_has_real_templates():
    catalog = {template.id: template for template in builtin_catalog()}
    assert {"static-site", "shell-api", "python-fastapi"} <= set(catalog)
    assert catalog["static-site"].build.base_image == "base/busybox:1.35"
    assert catalog["static-site"].build.command[-1] == "/app/public"
    assert "8080" in catalog["static-site"].build.command


def test_render_fills_placeholders_and_keeps_modes():
    template = next(t for t in builtin_catalog() if t.id == "shell-api")
    tree = render(template, VALUES)
    assert "shipyard.toml" in tree
    hello = tree["www/cgi-bin/hello"]
    assert hello.executable
    assert b"hello from Shop" in hello.data
    assert not any(b"{{ " in file.data for file in tree.values())


def test_render_needs_every_value():
    template = builtin_catalog()[0]
    with pytest.raises(TemplateError, match="app_slug"):
        render(template, {k: v for k, v in VALUES.items() if k != "app_slug"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not valid TOML"),
        ("[template]\nid='x'", "no \\[build\\] table"),
        ("[build]\ncommand=['x']\nport=1", "needs 'base_image'"),
        ("[build]\nbase_image='b'\ncommand=['x']\nport=99999", "out of range"),
        ("[build]\nbase_image='b'\ncommand=[]\nport=80", "command is empty"),
    ],
)
def test_bad_manifests_are_explained(text, message):
    with pytest.raises(TemplateError, match=message):
        parse_build_settings(text, "repo")

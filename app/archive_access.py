"""This web process's archive (core/archive), opened when first read: its database (and, the
first time, its schema migrations) is only touched by the routes that read it (/metrics, the
operator API's and dashboard's event reads), never by the webhook receiver."""

from __future__ import annotations

from flask import current_app

from core.archive import Archive, open_archive


def process_archive() -> Archive:
    extensions = current_app.extensions
    if "crmhub.archive" not in extensions:
        extensions["crmhub.archive"] = open_archive(extensions["crmhub"].settings)
    opened: Archive = extensions["crmhub.archive"]
    return opened

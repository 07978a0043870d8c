"""The dashboard (/ui): server-rendered pages over the same core operations."""

from __future__ import annotations

from flask import Flask

from core.settings import Settings


def register(app: Flask, settings: Settings) -> None:
    pass

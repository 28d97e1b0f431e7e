"""Tests of ``django_sessionkit.sessions_page``, one module per module."""

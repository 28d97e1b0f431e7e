"""Consent to non-essential cookies and scripts, with proof.

- ``categories``: the configured categories and which declared cookie
  belongs to which;
- ``state``: a visitor's decision (:class:`~django_sessionkit.consent.state.Consent`)
  and the signed cookie that carries it.
"""

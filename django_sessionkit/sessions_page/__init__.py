"""The user's own "Sessions and devices" page (``sessionkit:sessions``).

- :mod:`~django_sessionkit.sessions_page.data`: what the page shows: the
  requesting user's rows, their labels, and one page of them for the HTML and
  the JSON;
- :mod:`~django_sessionkit.sessions_page.views`: the page and its actions
  (sign out a session, a device or every other session; rename a device);
- :mod:`~django_sessionkit.sessions_page.export`: the download of everything
  stored about the user's devices, sessions and events.

The URLs are in ``django_sessionkit.urls``; the template is
``django_sessionkit/sessions.html``.
"""

# The two commands of the README, and the checks CI runs around them.
# Every target sets up what it needs on a fresh machine.

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test conformance soak docs lint typecheck package-check messages check-messages bench clean

$(PY):
	python=$$(scripts/find-python 12) && "$$python" -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# One stamp per set of extras, redone when the package metadata changes.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[$(subst +,$(comma),$*)]"
	touch $@

$(VENV)/.installed-base: setup.cfg pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

comma := ,

demo: $(VENV)/.installed-base
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_user
	@echo "Demo: http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/)"
	$(PY) manage.py runserver 127.0.0.1:8000

test: $(VENV)/.installed-test
	scripts/ensure-chromium
	$(PY) -m pytest $(PYTEST_ARGS)

conformance: $(VENV)/.installed-test
	$(PY) conformance/run.py

# Two gunicorn servers, a private Redis and PostgreSQL database, faults
# (docs/topics/security.rst, "Fault-and-load run"); CI runs `soak/run.py --short`.
soak: $(VENV)/.installed-test
	$(PY) soak/run.py

docs: $(VENV)/.installed-docs
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.installed-dev+test
	$(PY) -m mypy

bench: $(VENV)/.installed-test
	$(PY) bench/requests.py
	$(PY) bench/requests.py --postgres
	$(PY) bench/cached.py
	$(PY) bench/scale.py

package-check: $(VENV)/.installed-dev
	scripts/package-check $(PY)

# The translation catalogues (docs/howto/translations.rst): extract the strings of
# the code and templates into each language's django.po, then compile the
# .mo files. Needs GNU gettext (msgfmt). check-messages (CI) fails when this
# would change a catalogue; keep its makemessages options the same.
LANGUAGES ?= de es fr

messages: $(VENV)/.installed-base
	scripts/ensure-gettext
	cd django_sessionkit && $(abspath $(PY)) -m django makemessages \
		$(addprefix -l ,$(LANGUAGES)) --add-location file --no-obsolete
	cd django_sessionkit && $(abspath $(PY)) -m django compilemessages \
		$(addprefix -l ,$(LANGUAGES))

check-messages: $(VENV)/.installed-base
	scripts/ensure-gettext
	$(PY) scripts/check-messages

clean:
	rm -rf $(VENV) .cache build dist *.egg-info docs/_build demo/db.sqlite3

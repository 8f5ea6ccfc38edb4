# Shipyard: `make dev` runs everything locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
OCTOKIT_VERSION := 23.0.2
OCTOKIT_SPEC := $(VENV)/octokit/node_modules/@octokit/openapi/generated/api.github.com.json
DEBIAN_PACKAGES := docker-registry busybox-static git buildah chromium
APT_STAMP := $(VENV)/.debian-packages

.PHONY: dev test chaos lint format bench sandbox migrate doctor lock clean

dev: $(INSTALLED) $(APT_STAMP)
	$(PY) -m sandbox.dev

test: $(INSTALLED) $(APT_STAMP) $(OCTOKIT_SPEC)
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The crash and load tests at full size: 200 bootstraps, deploys and promotions at once.
chaos: $(INSTALLED) $(APT_STAMP) $(OCTOKIT_SPEC)
	SHIPYARD_CHAOS_OPERATIONS=200 $(PY) -m pytest -q tests/chaos

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(INSTALLED) $(APT_STAMP)
	@for bench in bench/*.py; do echo "== $$bench"; $(PY) $$bench || exit 1; done

sandbox: $(INSTALLED) $(APT_STAMP)
	$(PY) -m sandbox

migrate: $(INSTALLED)
	$(PY) -m core.migrate

doctor: $(INSTALLED)
	$(PY) -m ops.doctor

$(INSTALLED): requirements-dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# Debian packages the stand-ins run: the real registry, busybox for the offline base image;
# Chromium, which the browser tests drive through Playwright (its own browser download cannot run).
$(APT_STAMP): Makefile
	@missing=""; for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

# GitHub's own OpenAPI description, against which the fake GitHub's answers are checked.
$(OCTOKIT_SPEC):
	npm install --no-save --no-audit --no-fund --silent --prefix $(VENV)/octokit @octokit/openapi@$(OCTOKIT_VERSION)
	@test -f $@

lock:
	rm -rf /tmp/shipyard-lock && $(PYTHON) -m venv /tmp/shipyard-lock
	/tmp/shipyard-lock/bin/pip install --quiet . && \
	  (echo "# Runtime dependencies, pinned (pip freeze of \`pip install .\`). Regenerate with \`make lock\`."; \
	   /tmp/shipyard-lock/bin/pip freeze --exclude shipyard) > requirements.lock
	/tmp/shipyard-lock/bin/pip install --quiet '.[dev]' && \
	  (echo "# Runtime and development dependencies, pinned. Regenerate with \`make lock\`."; \
	   /tmp/shipyard-lock/bin/pip freeze --exclude shipyard) > requirements-dev.lock
	rm -rf /tmp/shipyard-lock build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

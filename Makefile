# Everything a developer or CI runs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first of these on PATH, 3.11 (what CI runs) preferred; PYTHON=... picks another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach candidate,python3.11 python3.12 python3.13 python3.14 python3,$(shell command -v $(candidate) 2>/dev/null)) python3)
endif
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/shared services/inventory services/orders services/payments gateway
SERVICES := gateway inventory orders payments
PY_DIRS := libs services gateway infra tests bench

export PATH := $(BIN):$(PATH)

# Debian packages a target needs (nginx, HAProxy, Chromium, ...): as root, or through sudo.
APT_GET := $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)

.PHONY: settings-doc infra check-python
.PHONY: help install check-servers db migrate seed dev test lint fmt typecheck archcheck pytest up compose-check k8s-check down clean bench soak nginx e2e e2e-browser chromium contracts openapi fuzz faults replicas replicas-lb replicas-test

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The interpreter the virtual environment is made from (run before each install).
check-python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or newer, or set PYTHON=..."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "$(PYTHON) is older than 3.11: install Python 3.11 or newer, or set PYTHON=..."; exit 1; }

$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES)) | check-python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt $(addprefix -e ,$(PACKAGES))
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install every package and tool (pinned by constraints.txt)

# Postgres, RabbitMQ or Redis missing here: installed from the distribution's packages and
# started, as root or through sudo (infra/dev/servers.py; docs/development.md).
SERVERS ?= install

check-servers: $(STAMP) ## Make sure Postgres, RabbitMQ and Redis answer: install (apt) and start any that does not; SERVERS=skip only says
	@$(BIN)/python infra/dev/servers.py --servers $(SERVERS)

infra: ## Start only Postgres, RabbitMQ and Redis on Docker Compose, and print the exports that point make dev at them (make test needs the servers on this machine)
	@$(PYTHON) infra/docker/compose_env.py .env.example .env
	docker compose up -d --wait postgres rabbitmq redis
	@echo "Point make dev at them (their passwords are in .env):"
	@echo '  eval "$$($(PYTHON) infra/dev/servers.py --compose-env .env)"'

db: check-servers ## Create the database, its schemas and roles (idempotent)
	@$(BIN)/python infra/postgres/prepare.py

migrate: db ## Apply every service's migrations
	@for service in $(SERVICES); do \
	  dir=$$( [ $$service = gateway ] && echo gateway || echo services/$$service ); \
	  echo "migrating $$service"; \
	  $(BIN)/alembic -c $$dir/alembic.ini upgrade head || exit 1; \
	done

# Settings default to production (placeholder secrets and development keys refused): the
# targets that run the shop on this machine say development, unless the environment says else.
check-servers db migrate seed dev bench soak replicas: export COMMERCE_ENVIRONMENT ?= development

DEV_ADMIN_EMAIL ?= admin@example.com
DEV_ADMIN_PASSWORD ?= correct-horse-battery-staple

seed: migrate ## Development data: an admin (DEV_ADMIN_EMAIL) and a demo catalog with stock (idempotent)
	@$(BIN)/python -m gateway create-admin --email $(DEV_ADMIN_EMAIL) --password $(DEV_ADMIN_PASSWORD)
	@$(BIN)/python -m inventory seed

# The storefront's origins (make dev serves it on :8080): the gateway's CORS allow-list.
DEV_CORS_ORIGINS ?= ["http://127.0.0.1:8080","http://localhost:8080"]

dev: seed ## Run the whole shop locally: storefront :8080, gateway :8000, services :8001-8003, workers (Ctrl-C stops all)
	@echo ""
	@echo "  storefront http://127.0.0.1:8080  (docs/storefront.md)"
	@echo "  gateway   http://127.0.0.1:8000   (docs: http://127.0.0.1:8000/docs; /health/ready, /metrics: :8100)"
	@echo "  admin     $(DEV_ADMIN_EMAIL) / $(DEV_ADMIN_PASSWORD)"
	@echo "  services  inventory :8001  orders :8002  payments :8003  (workers' probes :8101-8103)"
	@echo ""
	@COMMERCE_LOG_FORMAT=$${COMMERCE_LOG_FORMAT:-console} \
	  GATEWAY_CORS_ALLOW_ORIGINS=$${GATEWAY_CORS_ALLOW_ORIGINS:-'$(DEV_CORS_ORIGINS)'} \
	  $(BIN)/honcho -f Procfile start

# Two of every process behind HAProxy (docs/replicas.md): config and Procfile generated into
# var/replicas, run by a supervisor that restarts a process that exits.
REPLICAS_DIR := var/replicas

replicas-lb:
	@command -v haproxy >/dev/null || $(APT_GET) install -y -qq haproxy >/dev/null || { \
	  echo "HAProxy is not installed and could not be installed (apt-get install haproxy): make replicas needs it"; exit 1; }

replicas: seed replicas-lb ## Two of every process behind HAProxy on :8000, a replica that dies restarted (docs/replicas.md)
	@$(BIN)/python -m infra.replicas.generate $(REPLICAS_DIR)
	@echo ""
	@echo "  load balancer  http://127.0.0.1:8000  (HAProxy statistics: http://127.0.0.1:8404/stats)"
	@echo "  replica n      gateway :80n0 (probes :81n0), inventory :80n1, orders :80n2, payments :80n3, workers' probes :81n1-81n3"
	@echo "  services       through the load balancer: inventory :8001, orders :8002, payments :8003"
	@echo ""
	@COMMERCE_LOG_FORMAT=$${COMMERCE_LOG_FORMAT:-console} $(BIN)/python -m infra.replicas.supervisor $(REPLICAS_DIR)/Procfile

replicas-test: check-servers ## Kill, drain and restart replicas under load behind HAProxy, then check the books (~5 min)
	@command -v haproxy >/dev/null || $(APT_GET) install -y -qq haproxy >/dev/null || true
	$(BIN)/pytest -m replicas tests/replicas $(PYTEST_ARGS)

# Debian's prometheus package ships promtool, which checks the rules and the dashboards'
# queries (tests/test_prometheus_rules.py, tests/test_dashboards.py); its daemon is not needed.
.PHONY: promtool
promtool:
	@command -v promtool >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends prometheus >/dev/null; } || { \
	  echo "promtool could not be installed (apt-get install prometheus): the rule and dashboard tests will skip"; exit 1; }

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

fmt: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix $(PY_DIRS)
	$(BIN)/ruff format $(PY_DIRS)

typecheck: $(STAMP) ## mypy --strict over every package and the tests
	$(BIN)/mypy libs/shared/src libs/shared/tests services/*/src services/*/tests gateway/src gateway/tests infra tests bench

archcheck: $(STAMP) ## import-linter: services and gateway import only shared
	$(BIN)/lint-imports

pytest: check-servers ## The test suite alone (real Postgres, RabbitMQ, Redis)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck archcheck pytest ## Everything CI runs: lint, types, architecture, tests

e2e: check-servers ## End-to-end storefront journeys through the gateway of the whole running platform
	$(BIN)/pytest -m e2e tests $(PYTEST_ARGS)

# Debian's Chromium for the browser tests, if missing (Playwright cannot download one here).
chromium:
	@command -v chromium >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium; }

e2e-browser: check-servers chromium ## The storefront in headless Chromium against the whole running platform; screenshots in tests/browser/artifacts/
	$(BIN)/pytest -m browser tests/browser $(PYTEST_ARGS)

settings-doc: $(STAMP) ## Render docs/settings.md's tables from the settings classes (after adding or changing a setting)
	$(BIN)/python -m infra.dev.settings_doc

contracts: $(STAMP) ## Rewrite the OpenAPI and event schema snapshots on purpose, then run the contract tests
	$(BIN)/python -m tests.contract.update
	$(BIN)/pytest -m contracts tests $(PYTEST_ARGS)

openapi: $(STAMP) ## Write the gateway's merged OpenAPI (what /openapi.json serves) to docs/openapi.json, for client generators
	$(BIN)/python -m tests.contract.merged

fuzz: check-servers ## Schemathesis against the gateway's merged OpenAPI, authenticated, all phases
	$(BIN)/pytest -m fuzz tests $(PYTEST_ARGS)

faults: check-servers ## Crash a worker, stop the broker, cut database connections, replay a DLQ; then check the books
	$(BIN)/pytest -m faults tests $(PYTEST_ARGS)

# Debian's nginx, the proxy that make bench's catalog reads and gateway rows are measured against.
nginx:
	@command -v nginx >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq nginx-light >/dev/null; } \
	  || echo "nginx could not be installed (apt-get install nginx-light): the benchmarks run without their proxy reference"

bench: check-servers nginx ## Load benchmarks (127.0.0.1 only, ~12 min): figures and bench/results/<date>.md, never pass or fail
	$(BIN)/python -m bench.shop $(BENCH_ARGS)
	$(BIN)/python bench/messaging.py $(MESSAGING_BENCH_ARGS)
	$(BIN)/python -m bench.gateway $(GATEWAY_BENCH_ARGS)
	$(BIN)/python -m bench.ratelimit
	$(BIN)/python -m bench.tokens

SOAK_SECONDS ?= 600

soak: check-servers nginx ## Whole-platform soak (SOAK_SECONDS, default 600): memory of every process, plus make bench's scenarios
	$(BIN)/python -m bench.shop --soak-seconds $(SOAK_SECONDS) $(BENCH_ARGS)

up: ## Run the whole shop on Docker Compose (.env from .env.example if none), seeded as make dev
	@$(PYTHON) infra/docker/compose_env.py .env.example .env
	docker compose up --build -d --wait
	@if grep -qx 'COMMERCE_ENVIRONMENT=development' .env; then \
	  docker compose exec -T gateway python -m gateway create-admin --email $(DEV_ADMIN_EMAIL) --password $(DEV_ADMIN_PASSWORD) && \
	  docker compose exec -T inventory python -m inventory seed && \
	  echo "  gateway   http://127.0.0.1:8000   admin $(DEV_ADMIN_EMAIL) / $(DEV_ADMIN_PASSWORD)"; \
	else \
	  echo "  not seeded (.env is not development): docker compose exec gateway python -m gateway create-admin --email ... --password ..."; \
	fi

# Validate docker-compose.yml with Debian's docker-compose (installed if missing); docs/deployment.md.
compose-check: ## Validate docker-compose.yml with docker-compose config (installs Debian's docker-compose if missing)
	@command -v docker-compose >/dev/null || $(APT_GET) install -y docker-compose
	@env_file=$$(mktemp) && trap 'rm -f $$env_file' EXIT && \
	  $(PYTHON) -c 'import sys; sys.path.insert(0, "infra/docker"); import compose_env; print(compose_env.filled(open(".env.example").read()), end="")' > $$env_file && \
	  docker-compose --env-file $$env_file config --quiet && echo "docker-compose.yml is valid"

# Debian's kubectl 1.20 embeds kustomize v2, the oldest renderer the manifests must suit.
k8s-check: $(STAMP) ## Render every infra/k8s overlay and its monitoring (installs Debian's kubectl if missing) and validate them strictly
	@command -v kubectl >/dev/null || $(APT_GET) install -y kubernetes-client
	$(BIN)/pytest tests/test_k8s.py tests/test_k8s_monitoring.py $(PYTEST_ARGS)

down: ## Stop the Docker Compose stack
	docker compose down

clean: ## Remove .venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +

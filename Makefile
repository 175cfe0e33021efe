.PHONY: demo test bootstrap lint bench
demo: bootstrap
	.venv/bin/printgate demo $(ARGS)
test:
	scripts/test.sh
bootstrap:
	scripts/bootstrap.sh
lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/lint-imports --no-cache
bench: bootstrap
	for b in benchmarks/*.py; do .venv/bin/python $$b || exit 1; done

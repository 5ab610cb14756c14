.PHONY: demo test bench
demo:  ## set up and run the main job on the embedded stack
	bash scripts/demo.sh
test:  ## set up and run the tests
	bash scripts/test.sh
bench: ## orchestration benchmark (prints a table, writes bench/results/*.json)
	bash scripts/bootstrap.sh && .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python bench/bench_engine.py

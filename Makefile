# The two commands of the README. Both create .venv and install the pinned environment if needed.
PROFILE ?= default

.PHONY: book test bench clean
book:  ## execute every chapter on PROFILE (default: embedded model, CPU), with PARAMS=file.yaml overrides if given, and render book/_build/html
	PROFILE=$(PROFILE) PARAMS=$(PARAMS) scripts/build_book.sh

test:  ## unit tests, real-model tests, and the smoke build of the whole book
	scripts/run_tests.sh

bench:  ## print the speed figures (CETT vs forward pass, steering overhead)
	scripts/run_bench.sh

clean:
	rm -rf book/_build book/*.ipynb results

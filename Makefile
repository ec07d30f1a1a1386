test:
	bash infra/scripts/run-tests.sh

run:
	bash infra/scripts/run-hub.sh

.PHONY: test run

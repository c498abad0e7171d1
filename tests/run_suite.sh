#!/usr/bin/env bash
# The full suite (make test, what CI runs), in two parts so that it uses the machine's cores:
#   1. every test but the few that need every core, in TEST_WORKERS pytest-xdist processes (default: 2, or 1 on a
#      one-core machine); tests/conftest.py pins each worker, and whatever its tests start, to its own cores;
#   2. the tests marked whole_machine (the 2-process torchrun run), alone.
# TEST_WORKERS=1, or any argument (a file, -k, -m, -x ...), runs one plain pytest process with those arguments.
set -u
py=${PYTHON:-python}
cores=$(nproc 2>/dev/null || echo 1)
workers=${TEST_WORKERS:-$(( cores >= 2 ? 2 : 1 ))}
if [ "$workers" -le 1 ] || [ $# -gt 0 ]; then
    exec "$py" -m pytest "$@"
fi
"$py" -m pytest -m "not whole_machine" -n "$workers" --dist load --maxschedchunk 1; shared=$?
"$py" -m pytest -m whole_machine; alone=$?
echo "make test: tests sharing the cores: exit $shared; tests needing every core: exit $alone"
exit $(( shared != 0 ? shared : alone ))

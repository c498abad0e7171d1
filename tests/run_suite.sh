#!/usr/bin/env bash
# The full suite (make test, what CI runs), in two parts so that it uses the machine's cores:
#   1. every test but the few that need every core, in TEST_WORKERS pytest-xdist processes (default: 2, or 1 on a
#      one-core machine); tests/conftest.py pins each worker, and whatever its tests start, to its own cores, and
#      puts the longest tests first; xdist hands them out two at a time at the start, then one at a time;
#   2. the tests marked whole_machine (the 2-process torchrun run), alone.
# TEST_WORKERS=1, or any argument (a file, -k, -m, -x ...), runs one plain pytest process with those arguments.
set -u
py=${PYTHON:-python}
# the cores this process may use (its affinity mask; nproc would also read OMP_NUM_THREADS)
cores=$("$py" -c "import os; print(len(os.sched_getaffinity(0)))" 2>/dev/null || echo 1)
workers=${TEST_WORKERS:-$(( cores >= 2 ? 2 : 1 ))}
if ! [[ "$workers" =~ ^[0-9]+$ ]]; then
    echo "TEST_WORKERS=$workers: give a whole number of worker processes (1: one plain pytest process)" >&2
    exit 4
fi
if [ "$workers" -le 1 ] || [ $# -gt 0 ]; then
    exec "$py" -m pytest "$@"
fi
"$py" -m pytest -m "not whole_machine" -n "$workers" --dist load --maxschedchunk 1; shared=$?
if [ "$shared" -eq 2 ]; then  # interrupted (Ctrl-C): stop here
    exit 2
fi
"$py" -m pytest -m whole_machine; alone=$?
echo "make test: tests sharing the cores: exit $shared; tests needing every core: exit $alone"
exit $(( shared != 0 ? shared : alone ))

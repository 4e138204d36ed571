# A TestCase for test_sysvshm.py: keeps benchmarks/bench_sysvshm.py working (no timing assertions).
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# In test_sysvshm.py (repository root) this is: os.path.join(HERE, "benchmarks", "bench_sysvshm.py")
BENCH = os.path.join(HERE, "bench_sysvshm.py")


class TestBenchmarkScript(unittest.TestCase):
    """`bench_sysvshm.py --quick` runs to the end and prints its table (timings not checked)."""

    def test_quick_run_prints_the_table(self):
        if not os.path.exists(BENCH):
            self.skipTest("benchmarks/bench_sysvshm.py is not here")
        try:
            done = subprocess.run([sys.executable, BENCH, "--quick"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True, timeout=180)
        except subprocess.TimeoutExpired as exc:
            self.fail("bench_sysvshm.py --quick did not finish in %d s" % exc.timeout)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        out = done.stdout
        for title in ("uncontended acquire+release pair", "64-byte read at an offset",
                      "copy into a segment", "create+attach+detach+remove", "import time",
                      "Targets"):
            self.assertIn(title, out)
        # sysvshm's own rows were measured (not skipped, not failed) on every interpreter.
        for row in ("sysvshm Semaphore ", "sysvshm read(64, o)", "sysvshm buf[:] = src",
                    "sysvshm SharedMemory(IPC_PRIVATE, IPC_CREAT)", "import sysvshm "):
            line = [l for l in out.splitlines() if l.strip().startswith(row.strip())]
            self.assertTrue(line, "no row %r in:\n%s" % (row, out))
            self.assertNotIn("error:", line[0], line[0])
            self.assertNotIn("skipped:", line[0], line[0])
        self.assertNotIn("error:", out, out)


if __name__ == "__main__":
    unittest.main()

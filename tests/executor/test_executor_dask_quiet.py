"""The default Context is quiet: no Dask log lines; a UDF error surfaces once, as the
user's exception, with a traceback that shows the user's file and line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback

import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.udf import UDF

SCRIPT = textwrap.dedent(
    """
    import sys
    import traceback

    import numpy as np

    from libertem.api import Context
    from libertem.udf import UDF
    from libertem.udf.sum import SumUDF


    class BadUDF(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            raise ValueError("bad frame %d" % 7)  # the raise line


    def divide_by_zero():
        return 1 / 0


    if __name__ == "__main__":
        with Context() as ctx:
            ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype=np.float32), sig_dims=2)
            res = ctx.run_udf(dataset=ds, udf=SumUDF())
            print("SUM", float(res["intensity"].data.sum()))
            try:
                ctx.run_udf(dataset=ds, udf=BadUDF())
            except ValueError:
                traceback.print_exc(file=sys.stdout)
            try:  # a plain Dask task that fails: no "Compute Failed" report either
                ctx.executor.run_function(divide_by_zero)
            except ZeroDivisionError:
                print("ZERO")
            print("DONE")
    """
)


@pytest.fixture(scope="module")
def script_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("quiet") / "user_script.py"
    path.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=path.parent,
    )
    return path, proc


def test_default_context_prints_nothing(script_run):
    _, proc = script_run
    assert proc.returncode == 0, proc.stderr
    assert "SUM 1024.0" in proc.stdout and "DONE" in proc.stdout, proc.stdout
    assert "ZERO" in proc.stdout
    assert proc.stderr == "", proc.stderr


def test_udf_error_surfaces_once_with_the_users_file_and_line(script_run):
    path, proc = script_run
    out = proc.stdout + proc.stderr
    assert out.count("bad frame 7") == 1, out
    assert "ValueError: bad frame 7" in proc.stdout
    line = SCRIPT.splitlines().index(
        '        raise ValueError("bad frame %d" % 7)  # the raise line'
    )
    assert f'File "{path}", line {line + 1}, in process_frame' in proc.stdout, proc.stdout
    assert "<dynamic-code>" not in out


# --- in this process: a UDF of this (test) module, by value on the workers -----------------


class RaisingUDF(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        raise KeyError("no such frame")


RAISE_LINE = RaisingUDF.process_frame.__code__.co_firstlineno + 1


@pytest.fixture(scope="module")
def quiet_dask_ctx():
    executor = acquire_cluster()
    with Context(executor=executor) as ctx:
        yield ctx
    release_cluster()


def test_traceback_of_by_value_udf_shows_file_and_line(quiet_dask_ctx):
    ds = quiet_dask_ctx.load("memory", data=np.ones((2, 2, 4, 4)), sig_dims=2)
    with pytest.raises(KeyError) as info:
        quiet_dask_ctx.run_udf(dataset=ds, udf=RaisingUDF())
    frames = traceback.extract_tb(info.value.__traceback__)
    ours = [f for f in frames if f.name == "process_frame"]
    assert ours, frames
    assert ours[-1].filename == __file__
    assert ours[-1].lineno == RAISE_LINE
    assert ours[-1].line == 'raise KeyError("no such frame")'


# --- the pieces -------------------------------------------------------------------------------


def test_quiet_logging_levels_and_compute_failed_filter(monkeypatch):
    import logging

    from libertem.executor.utils.dask_cluster import level_name
    from libertem.executor.utils.quiet_worker import DropComputeFailed, quiet_logging

    assert level_name(logging.INFO) == "INFO" and level_name("warning") == "WARNING"
    assert level_name(None) is None and level_name(False) is None
    with pytest.raises(ValueError, match="log level"):
        level_name("chatty")
    for name in ("distributed", "dask", "tornado", "libertem"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    worker_logger = logging.getLogger("distributed.worker")
    monkeypatch.setattr(worker_logger, "filters", list(worker_logger.filters))
    quiet_logging("ERROR")
    assert logging.getLogger("distributed").level == logging.ERROR
    dropper = [f for f in worker_logger.filters if isinstance(f, DropComputeFailed)]
    assert len(dropper) == 1
    report = logging.LogRecord("distributed.worker", 40, "", 0, "Compute Failed\nKey: x", (), None)
    other = logging.LogRecord("distributed.worker", 40, "", 0, "Something else", (), None)
    assert not dropper[0].filter(report) and dropper[0].filter(other)
    quiet_logging("ERROR")  # only one filter, however often
    assert sum(isinstance(f, DropComputeFailed) for f in worker_logger.filters) == 1


def test_heartbeat_cut_short_by_shutdown_is_dropped(monkeypatch):
    import logging

    from distributed.comm import CommClosedError

    from libertem.executor.utils.quiet_worker import DropHeartbeatAtShutdown, quiet_logging

    worker_logger = logging.getLogger("distributed.worker")
    monkeypatch.setattr(worker_logger, "filters", list(worker_logger.filters))
    quiet_logging("WARNING")
    quiet_logging("WARNING")
    droppers = [f for f in worker_logger.filters if isinstance(f, DropHeartbeatAtShutdown)]
    assert len(droppers) == 1

    def record(msg, exc):
        exc_info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("distributed.worker", 40, "", 0, msg, (), exc_info)

    heartbeat = "Failed to communicate with scheduler during heartbeat."
    closing = CommClosedError("ConnectionPool closing.")
    assert not droppers[0].filter(record(heartbeat, closing))
    # a scheduler that is really unreachable (this worker not closing) is still reported
    assert droppers[0].filter(record(heartbeat, CommClosedError("in <TCP ...>: Stream closed")))
    assert droppers[0].filter(record(heartbeat, OSError("timed out")))
    assert droppers[0].filter(record("Something else", closing))
    # the scheduler's end closed while this process's worker was closing
    from libertem.executor.utils import quiet_worker

    monkeypatch.setattr(quiet_worker, "_worker_closing", lambda: True)
    assert not droppers[0].filter(record(heartbeat, CommClosedError("Stream is closed")))
    assert droppers[0].filter(record(heartbeat, OSError("timed out")))


def test_pickling_keeps_file_names_of_code_by_value():
    import cloudpickle

    from libertem.common.pickling import dumps

    namespace: dict = {}
    exec(compile("def f(x):\n    return 2 * x\n", "/some/user/file.py", "exec"), namespace)
    f = namespace["f"]  # no importable module: pickled by value
    plain = cloudpickle.loads(cloudpickle.dumps(f))
    ours = cloudpickle.loads(dumps(f))
    assert plain.__code__.co_filename == "<dynamic-code>"
    assert ours.__code__.co_filename == "/some/user/file.py"
    assert ours(21) == 42
    assert dumps(f) == dumps(f)  # deterministic: identical parameters, identical bytes

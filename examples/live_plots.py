"""Live plots from a script: windows open without blocking and update while the UDFs run.

Run with ``python examples/live_plots.py``. With a non-interactive matplotlib backend
(``MPLBACKEND=Agg``) nothing is shown; the final figures are saved as PNG files next
to the working directory's ``live_plots_*.png`` instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from libertem.api import Context
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.viz.mpl import _backend_mode


def main(save_dir: str = ".") -> tuple:
    """Run two UDFs with live plots on random data; return their results."""
    before = set(plt.get_fignums())
    with Context.make_with("threads", cpus=2) as ctx:
        rng = np.random.default_rng(0)
        data = rng.random((32, 32, 64, 64), dtype=np.float32)
        ds = ctx.load("memory", data=data, num_partitions=16)
        res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], plots=True)
        assert np.allclose(res[1]["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-4)
    if _backend_mode() == "none":
        for n in sorted(set(plt.get_fignums()) - before):
            plt.figure(n).savefig(f"{save_dir}/live_plots_{n}.png")
    else:
        plt.show()
    return res


if __name__ == "__main__":
    main()

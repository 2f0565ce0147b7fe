"""Run every benchmark of the project and print throughput and ratios."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_core, bench_formats, bench_memory, bench_soak, bench_web  # noqa: E402

if __name__ == "__main__":
    print(f"file: {bench_core.make_raw_file()}")
    bench_core.main()
    bench_memory.main([])
    bench_formats.main()
    bench_web.main()
    bench_soak.main(sys.argv[1:])

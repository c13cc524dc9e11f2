"""Stage kernels cannot take each other's sockets: IPC under a private path, started concurrently."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

from avelib.notebook import IPCKernelManager, execute_notebook


def test_each_kernel_gets_its_own_ipc_path():
    a, b = IPCKernelManager(), IPCKernelManager()
    assert a.transport == b.transport == "ipc"
    assert a.ip != b.ip and Path(a.ip).parent.is_dir()


def _run_tiny(folder: str, n: int) -> str:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("n = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('square', n * n)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = Path(folder) / f"in{n}.ipynb", Path(folder) / f"out{n}.ipynb"
    nbformat.write(nb, src)
    execute_notebook(src, out, {"n": n}, cwd=Path(folder), execution_timeout=60)
    return nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"]


def test_kernels_started_at_once_each_answer_their_own_client(tmp_path):
    # four kernels started together from two processes (what two xdist workers or two stages do)
    with ProcessPoolExecutor(2) as pool:
        texts = list(pool.map(_run_tiny, [str(tmp_path)] * 4, range(2, 6)))
    assert texts == [f"square {n * n}\n" for n in range(2, 6)]

"""Executes a notebook with nbclient and writes it, outputs included, to OUT (or back in place).

    python crates/python/run_notebook.py docs/python-example.ipynb [OUT]

Fails when a cell raises, or when no cell shows a picture (the heat map).
"""

import sys
from pathlib import Path

import nbclient
import nbformat


def main() -> None:
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else src
    nb = nbformat.read(src, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(src.parent)}}
    )
    client.execute()
    pictures = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    )
    if pictures == 0:
        raise SystemExit(f"{src}: no cell showed a picture")
    nbformat.write(nb, out)
    print(f"{src}: executed, {pictures} pictures shown; written to {out}")


if __name__ == "__main__":
    main()

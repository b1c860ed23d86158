#!/usr/bin/env python3
"""Measures p50/p99 acknowledgement latency of single-row autocommit INSERTs: insert-latency.py URL N."""
# p50/p99 acknowledgement latency of single-row INSERTs (autocommit), N rows.
import sys, time, statistics, psycopg
url, n = sys.argv[1], int(sys.argv[2])
with psycopg.connect(url, autocommit=True) as c:
    c.execute("DROP TABLE IF EXISTS lat")
    c.execute("CREATE TABLE lat (id BIGINT PRIMARY KEY, v vector(8))")
    lat = []
    for i in range(n):
        t = time.perf_counter()
        c.execute("INSERT INTO lat VALUES (%s, '[1,2,3,4,5,6,7,8]')", (i,))
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    print(f"n={n} p50={lat[n//2]:.2f}ms p99={lat[int(n*0.99)]:.2f}ms mean={statistics.mean(lat):.2f}ms")

#!/usr/bin/env python3
"""redis-py's RedisCluster against tandem servers' client ports (cluster_clients.rs).

  cluster_clients.py write PORT FIRST COUNT DEADLINE_S   set key:i = value:i for i in
      FIRST..FIRST+COUNT, each retried until it is acknowledged or the deadline passes; prints
      the indexes acknowledged, one per line, then "DONE".
  cluster_clients.py check PORT FIRST COUNT DEADLINE_S   reads them back (retrying errors until
      the deadline); prints "MISSING i" for each key whose value is not value:i, then "DONE".
  cluster_clients.py pipeline PORT                       a pipeline of SETs and GETs on keys of
      many slots; prints "DONE" when every reply is right.

Exit status 0 unless the client itself cannot start; the Rust test judges the output.
"""
import sys
import time

from redis.cluster import RedisCluster
from redis.exceptions import RedisError


def connect(port, deadline):
    while True:
        try:
            return RedisCluster(host="127.0.0.1", port=port, socket_timeout=5,
                                socket_connect_timeout=2)
        except RedisError as error:
            if time.monotonic() > deadline:
                raise
            print("connect failed: %r" % error, file=sys.stderr)
            time.sleep(0.2)


def retry(deadline, action):
    while True:
        try:
            return action()
        except RedisError as error:
            if time.monotonic() > deadline:
                print("gave up: %r" % error, file=sys.stderr)
                return None
            print("retrying after %r" % error, file=sys.stderr)
            time.sleep(0.1)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "pipeline":
        deadline = time.monotonic() + 30
        client = connect(port, deadline)
        pipe = client.pipeline()
        for i in range(50):
            pipe.set("pipe:%d" % i, "p%d" % i)
        for i in range(50):
            pipe.get("pipe:%d" % i)
        replies = pipe.execute()
        assert replies[:50] == [True] * 50, replies[:50]
        got = [r.decode() for r in replies[50:]]
        assert got == ["p%d" % i for i in range(50)], got
        print("DONE")
        return
    first, count, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    deadline = time.monotonic() + seconds
    client = connect(port, deadline)
    for i in range(first, first + count):
        key, value = "key:%d" % i, "value:%d" % i
        if mode == "write":
            if retry(deadline, lambda: client.set(key, value)):
                print(i, flush=True)
        else:
            got = retry(deadline, lambda: client.get(key))
            if got is None or got.decode() != value:
                print("MISSING %d %r" % (i, got), flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()

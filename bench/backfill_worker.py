"""The hand-written baselines of the backfill benchmark, one per process.

    python bench/backfill_worker.py KIND URI DATABASE BATCH_SIZE PIPELINE GUARD

KIND is ``naive`` (one ``update_one`` per document), ``bulk`` (one ``bulk_write`` of
``UpdateOne`` per batch of BATCH_SIZE documents, streamed from one cursor) or
``update_many`` (one server-side ``update_many`` over the whole collection: the floor).
PIPELINE is ``1`` when the server takes pipeline updates (then ``update_many`` computes
the field on the server) and ``0`` when it does not (then it applies the same operator
update the alley server-side path applies). Every kind sets ``total = a + b`` on the
documents without it and increments the counter ``n``, like the alley migrations of
``bench/data_backfill.py``. GUARD is the filter of each per-document update: ``id``
(``{_id}``, as such loops are usually written) or ``where`` (``{_id, total: {$exists:
false}}``, which also skips a document done since it was read).
"""

from __future__ import annotations

import sys

import pymongo
from pymongo import UpdateOne

WHERE = {"total": {"$exists": False}}


def change(doc: dict) -> dict:
    return {"$set": {"total": doc["a"] + doc["b"]}, "$inc": {"n": 1}}


def main() -> int:
    kind, uri, database, batch_size, pipeline, guard = sys.argv[1:7]
    extra = WHERE if guard == "where" else {}
    size = int(batch_size)
    client = pymongo.MongoClient(uri)
    items = client[database]["items"]
    projection = {"a": 1, "b": 1}
    if kind == "naive":
        for doc in items.find(WHERE, projection, sort=[("_id", 1)]):
            items.update_one({"_id": doc["_id"], **extra}, change(doc))
    elif kind == "bulk":
        ops: list[UpdateOne] = []
        for doc in items.find(WHERE, projection, sort=[("_id", 1)], batch_size=size):
            ops.append(UpdateOne({"_id": doc["_id"], **extra}, change(doc)))
            if len(ops) >= size:
                items.bulk_write(ops, ordered=False)
                ops = []
        if ops:
            items.bulk_write(ops, ordered=False)
    elif kind == "update_many":
        if pipeline == "1":
            items.update_many(
                WHERE, [{"$set": {"total": {"$add": ["$a", "$b"]}, "n": {"$add": ["$n", 1]}}}]
            )
        else:
            items.update_many(WHERE, {"$set": {"total": -1}, "$inc": {"n": 1}})
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

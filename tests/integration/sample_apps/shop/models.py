"""Every index form: the basic ones and those FerretDB 1.24 lacks (text, hashed,
2dsphere, TTL, partial, collation, sparse)."""

# MongoEngine's own idiom: meta is a plain dict on the class.
# ruff: noqa: RUF012

import mongoengine as me

from shop.basic import (  # noqa: F401  (the models module names all the models)
    Animal,
    Category,
    Click,
    Customer,
    Dog,
    Event,
    Ledger,
    Supplier,
    Timestamped,
    Warehouse,
)


class Product(me.Document):
    """A weighted text index and a hashed one."""

    name = me.StringField()
    description = me.StringField()
    sku = me.StringField()
    meta = {
        "indexes": [
            {
                "fields": ["$name", "$description"],
                "weights": {"name": 10, "description": 2},
                "default_language": "english",
            },
            "#sku",
        ]
    }


class Session(me.Document):
    """A TTL index (expireAfterSeconds)."""

    created = me.DateTimeField()
    meta = {"indexes": [{"fields": ["created"], "expireAfterSeconds": 3600}]}


class Order(me.Document):
    """A partial index, and a sparse unique field."""

    status = me.StringField()
    placed = me.DateTimeField()
    voucher = me.StringField(unique=True, sparse=True)
    meta = {
        "indexes": [
            {
                "fields": ["status", "-placed"],
                "name": "open_orders",
                "partialFilterExpression": {"status": "open"},
            }
        ]
    }


class Store(me.Document):
    """A PointField (MongoEngine adds its 2dsphere index) and a collation."""

    location = me.PointField()
    title = me.StringField()
    meta = {
        "indexes": [
            {"fields": ["title"], "collation": {"locale": "en", "strength": 2}, "name": "title_ci"}
        ]
    }

"""Models whose indexes every test server builds (FerretDB 1.24 too)."""

# MongoEngine's own idiom: meta is a plain dict on the class.
# ruff: noqa: RUF012

import mongoengine as me


class Timestamped(me.Document):
    """An abstract base: its indexes go to each concrete subclass's collection."""

    created = me.DateTimeField()
    meta = {"abstract": True, "indexes": ["-created"]}


class Customer(Timestamped):
    """meta['collection'], a unique field, unique_with, a named compound index."""

    email = me.StringField(unique=True)
    handle = me.StringField(unique_with="tenant")
    tenant = me.StringField()
    last_name = me.StringField()
    first_name = me.StringField()
    meta = {
        "collection": "customers",
        "indexes": [
            {"fields": ["last_name", "+first_name"], "name": "by_name"},
        ],
    }


class Category(me.Document):
    """A plain string index and a list (compound) one with a descending key."""

    slug = me.StringField()
    parent = me.StringField()
    rank = me.IntField()
    meta = {"indexes": ["slug", ["parent", "-rank"]]}


class Animal(me.Document):
    """allow_inheritance: indexes start with _cls, except one with cls: False."""

    name = me.StringField()
    tag = me.StringField()
    meta = {
        "allow_inheritance": True,
        "indexes": ["name", {"fields": ["tag"], "cls": False}],
    }


class Dog(Animal):
    """A subclass: its own indexes go to the parent's collection, _cls first."""

    breed = me.StringField()
    meta = {"indexes": ["breed"]}


class Event(me.Document):
    """allow_inheritance with index_cls: False: no _cls prefix, no _cls index."""

    at = me.DateTimeField()
    meta = {"allow_inheritance": True, "index_cls": False, "indexes": ["-at"]}


class Click(Event):
    """A subclass of Event (same collection)."""

    target = me.StringField()


class Ledger(me.Document):
    """auto_create_index: False (the application never builds them: migrations do);
    an index on an embedded field by its dotted path."""

    account = me.StringField()
    entry = me.DictField()
    meta = {"auto_create_index": False, "indexes": [("account", "entry.at")]}


class Supplier(me.Document):
    """Only the unique field's index, and a db_field."""

    code = me.StringField(unique=True, db_field="c")


class Warehouse(me.Document):
    """Only the _id index: nothing to create."""

    city = me.StringField()

"""add email"""


def up(db):
    db.users.update_many({}, {"$set": {"email": None}})


def down(db):
    db.users.update_many({}, {"$unset": {"email": ""}})

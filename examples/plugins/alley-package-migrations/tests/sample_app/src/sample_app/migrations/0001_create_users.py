"""create users"""


def up(db):
    db.users.insert_one({"_id": "ada", "name": "Ada"})


def down(db):
    db.users.delete_one({"_id": "ada"})

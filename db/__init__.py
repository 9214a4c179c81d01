"""The feedback store: photos, predictions, moderators' decisions, statistics and export rows.

Query functions take a Session and never commit; frame the unit of work yourself:

    engine = open_database(settings)
    with session_scope(engine) as session:
        submit_review(session, image_id, action="confirmed", reviewer="alice", expected_review_id=None)

Import from the module that holds a function (db.reviews, db.queue, db.stats, ...): one home each.
"""

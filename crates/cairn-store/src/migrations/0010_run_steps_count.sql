-- A journal entry keeps its run's entry count (`runs.steps`, the largest entry number: a
-- multi-row insert need not go in order) and last change in step by itself: a trigger, so any
-- number of entries of any number of runs go in as one INSERT (one round trip) that no writer
-- can leave half done. The primary key (run_id, seq) is the compare-and-set on a journal's
-- length: an entry numbered after a stale length collides with the entry already there.
{STEPS_TRIGGER}

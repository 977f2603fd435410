-- A journal entry keeps its run's entry count (`runs.steps`) and last change in step by
-- itself: a trigger, so an append is one INSERT (one round trip) that no writer can leave
-- half done. The INSERT carries the compare-and-set (the run holds exactly the entries the
-- writer read, and has not ended), and the primary key turns away a racing writer's entry.
{STEPS_TRIGGER}

-- The W3C traceparent of the work that enqueued a job, so its attempts join that trace.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;

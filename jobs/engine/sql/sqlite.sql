-- Jobdeck's hand-written statements for SQLite: the same work as postgresql.sql
-- (read its header). SQLite has no row locks: the engine runs a claim and what
-- commits with it inside one BEGIN IMMEDIATE transaction, so writers queue on the
-- database lock and a claim always sees the last committed state. Lists travel as
-- one JSON parameter read with json_each (one statement whatever their length,
-- within SQLite's parameter limit). Datetimes are Django's text form (UTC), which
-- sorts like time.


-- name: claim_next
-- Claim the most urgent runnable job of :queues (a JSON list) for :worker at :now:
-- pending, due, and without a lock key or first in line for it (taking the lowest
-- free slot of the key); highest priority, then oldest; nothing while a flow rule is
-- set (see postgresql.sql). Under the write lock no other claim interleaves, so the
-- running_lock_slot_unique index is only the last line of defence here.
UPDATE jobs_job
SET status = 'running',
    attempts = attempts + 1,
    worker = %(worker)s,
    started_at = %(now)s,
    heartbeat_at = %(now)s,
    finished_at = NULL,
    attempted_by = json_insert(attempted_by, '$[#]', json_array(%(worker)s, %(now)s)),
    lock_slot = CASE WHEN lock IS NULL THEN NULL ELSE (
        SELECT min(f.n) FROM (
            SELECT 0 AS n
            UNION ALL
            SELECT r.lock_slot + 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running') f
        WHERE NOT EXISTS (
            SELECT 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running' AND r.lock_slot = f.n))
    END
WHERE id = (
    SELECT j.id FROM jobs_job j
    WHERE j.status = 'pending' AND j.waiting_on = 0
      AND j.queue IN (SELECT value FROM json_each(%(queues)s))
      AND (j.run_after IS NULL OR j.run_after <= %(now)s)
      AND (j.lock IS NULL OR (
            NOT EXISTS (
                SELECT 1 FROM jobs_job k
                WHERE k.lock = j.lock AND k.status = 'pending' AND k.waiting_on = 0 AND k.id < j.id)
            AND (SELECT count(*) FROM jobs_job k
                 WHERE k.lock = j.lock AND k.status = 'running') < j.lock_limit))
      AND NOT EXISTS (SELECT 1 FROM jobs_flowsetting f
                      WHERE f.paused OR f.concurrency_limit IS NOT NULL
                         OR f.rate_limit IS NOT NULL)
    ORDER BY j.priority DESC, j.id
    LIMIT 1)
  AND status = 'pending'
RETURNING *;


-- name: claim_job
-- Claim job :job_id (the one a wake-up names) for :worker if it is runnable and one
-- of :queues: the rules of claim_next.
UPDATE jobs_job
SET status = 'running',
    attempts = attempts + 1,
    worker = %(worker)s,
    started_at = %(now)s,
    heartbeat_at = %(now)s,
    finished_at = NULL,
    attempted_by = json_insert(attempted_by, '$[#]', json_array(%(worker)s, %(now)s)),
    lock_slot = CASE WHEN lock IS NULL THEN NULL ELSE (
        SELECT min(f.n) FROM (
            SELECT 0 AS n
            UNION ALL
            SELECT r.lock_slot + 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running') f
        WHERE NOT EXISTS (
            SELECT 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running' AND r.lock_slot = f.n))
    END
WHERE id = (
    SELECT j.id FROM jobs_job j
    WHERE j.id = %(job_id)s
      AND j.status = 'pending' AND j.waiting_on = 0
      AND j.queue IN (SELECT value FROM json_each(%(queues)s))
      AND (j.run_after IS NULL OR j.run_after <= %(now)s)
      AND (j.lock IS NULL OR (
            NOT EXISTS (
                SELECT 1 FROM jobs_job k
                WHERE k.lock = j.lock AND k.status = 'pending' AND k.waiting_on = 0 AND k.id < j.id)
            AND (SELECT count(*) FROM jobs_job k
                 WHERE k.lock = j.lock AND k.status = 'running') < j.lock_limit))
      AND NOT EXISTS (SELECT 1 FROM jobs_flowsetting f
                      WHERE f.paused OR f.concurrency_limit IS NOT NULL
                         OR f.rate_limit IS NOT NULL))
  AND status = 'pending'
RETURNING *;


-- name: claim_governed_candidate
-- The claim while flow rules are set, first half (see postgresql.sql, claim_governed):
-- the most urgent runnable job of the open lanes in :lanes, a JSON list of
-- [queue, job type, type limit or null, queue limit or null], or only job :job_id
-- when given; never a job of a key in :blocked_keys (a JSON list). Returns its id
-- and whether its type and queue are limited. A lane at its limit reads no job.
WITH lane AS (
    SELECT l.value ->> 0 AS queue, l.value ->> 1 AS job_type,
           l.value ->> 2 AS type_limit, l.value ->> 3 AS queue_limit
    FROM json_each(%(lanes)s) AS l
), head AS (
    SELECT (
        SELECT j.id FROM jobs_job j
        WHERE j.status = 'pending' AND j.waiting_on = 0
          AND j.queue = lane.queue
          AND j.job_type = lane.job_type
          AND (%(job_id)s IS NULL OR j.id = %(job_id)s)
          AND (j.run_after IS NULL OR j.run_after <= %(now)s)
          AND (j.lock IS NULL OR (
                j.lock NOT IN (SELECT value FROM json_each(%(blocked_keys)s))
                AND NOT EXISTS (
                    SELECT 1 FROM jobs_job k
                    WHERE k.lock = j.lock AND k.status = 'pending' AND k.waiting_on = 0 AND k.id < j.id)
                AND (SELECT count(*) FROM jobs_job k
                     WHERE k.lock = j.lock AND k.status = 'running') < j.lock_limit))
        ORDER BY j.priority DESC, j.id
        LIMIT 1) AS id,
        lane.type_limit, lane.queue_limit
    FROM lane
    WHERE (lane.type_limit IS NULL OR (
            SELECT count(*) FROM jobs_job r
            WHERE r.status = 'running' AND r.job_type = lane.job_type) < lane.type_limit)
      AND (lane.queue_limit IS NULL OR (
            SELECT count(*) FROM jobs_job r
            WHERE r.status = 'running' AND r.queue = lane.queue) < lane.queue_limit)
)
SELECT head.id, head.type_limit IS NOT NULL AS type_limited,
       head.queue_limit IS NOT NULL AS queue_limited
FROM head JOIN jobs_job j ON j.id = head.id
ORDER BY j.priority DESC, j.id
LIMIT 1;


-- name: claim_governed
-- The claim while flow rules are set, second half: claim job :job_id (the candidate,
-- read under the same write lock) for :worker, with the lowest free slot of its key
-- and, when :type_limited / :queue_limited, of its type and queue.
UPDATE jobs_job
SET status = 'running',
    attempts = attempts + 1,
    worker = %(worker)s,
    started_at = %(now)s,
    heartbeat_at = %(now)s,
    finished_at = NULL,
    attempted_by = json_insert(attempted_by, '$[#]', json_array(%(worker)s, %(now)s)),
    lock_slot = CASE WHEN lock IS NULL THEN NULL ELSE (
        SELECT min(f.n) FROM (
            SELECT 0 AS n
            UNION ALL
            SELECT r.lock_slot + 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running') f
        WHERE NOT EXISTS (
            SELECT 1 FROM jobs_job r
            WHERE r.lock = jobs_job.lock AND r.status = 'running' AND r.lock_slot = f.n))
    END,
    type_slot = CASE WHEN NOT %(type_limited)s THEN NULL ELSE (
        SELECT min(f.n) FROM (
            SELECT 0 AS n
            UNION ALL
            SELECT r.type_slot + 1 FROM jobs_job r
            WHERE r.job_type = jobs_job.job_type AND r.status = 'running'
              AND r.type_slot IS NOT NULL) f
        WHERE NOT EXISTS (
            SELECT 1 FROM jobs_job r
            WHERE r.job_type = jobs_job.job_type AND r.status = 'running'
              AND r.type_slot = f.n))
    END,
    queue_slot = CASE WHEN NOT %(queue_limited)s THEN NULL ELSE (
        SELECT min(f.n) FROM (
            SELECT 0 AS n
            UNION ALL
            SELECT r.queue_slot + 1 FROM jobs_job r
            WHERE r.queue = jobs_job.queue AND r.status = 'running'
              AND r.queue_slot IS NOT NULL) f
        WHERE NOT EXISTS (
            SELECT 1 FROM jobs_job r
            WHERE r.queue = jobs_job.queue AND r.status = 'running'
              AND r.queue_slot = f.n))
    END
WHERE id = %(job_id)s AND status = 'pending'
RETURNING *;


-- name: ensure_rate_slots
-- The :rate slots of rate scope :scope, as if last used at :epoch, where missing
-- (:slots is the JSON list 0…rate-1).
INSERT INTO jobs_rateslot (scope, slot, started_at)
SELECT %(scope)s, s.value, %(epoch)s FROM json_each(%(slots)s) AS s WHERE true
ON CONFLICT (scope, slot) DO NOTHING;


-- name: take_rate_slot
-- A start under rate scope :scope at :at: a slot below :rate last used at or before
-- :cutoff (:at minus the period) records it (see postgresql.sql; under the write lock
-- nothing interleaves). Returns the slot taken, none when the window is full.
UPDATE jobs_rateslot
SET started_at = %(at)s
WHERE id = (
    SELECT id FROM jobs_rateslot
    WHERE scope = %(scope)s AND slot < %(rate)s AND started_at <= %(cutoff)s
    ORDER BY started_at, slot
    LIMIT 1)
RETURNING slot;


-- name: start_first_task
-- In the claim's transaction: start the first unfinished task of the job just
-- claimed (:job_id), if it is pending or failed in an earlier attempt.
UPDATE jobs_task
SET status = 'running', started_at = %(now)s, finished_at = NULL, error = '',
    attempts = attempts + 1
WHERE id = (
    SELECT t.id FROM jobs_task t
    WHERE t.job_id = %(job_id)s AND t.status <> 'succeeded'
    ORDER BY t.position LIMIT 1)
  AND status IN ('pending', 'failed')
RETURNING id;


-- name: task_list
-- The tasks of job :job_id in order, with what the worker reads.
SELECT id, position, name, status, result FROM jobs_task
WHERE job_id = %(job_id)s
ORDER BY position;


-- name: start_task
-- Start task :task_id of job :job_id: only while the worker's claim holds (running,
-- attempt :attempt) and nobody asked to cancel, and only if the task is pending or
-- failed in an earlier attempt (see postgresql.sql).
UPDATE jobs_task
SET status = 'running', started_at = %(now)s, finished_at = NULL, error = '',
    attempts = attempts + 1
WHERE id = %(task_id)s
  AND status IN ('pending', 'failed')
  AND EXISTS (
        SELECT 1 FROM jobs_job
        WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s
          AND cancel_requested_at IS NULL);


-- name: task_succeeded
-- Task :task_id succeeded with :task_result (JSON), fenced on the claim.
UPDATE jobs_task
SET status = 'succeeded', result = %(task_result)s, finished_at = %(now)s
WHERE id = %(task_id)s AND status = 'running'
  AND EXISTS (
        SELECT 1 FROM jobs_job
        WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s);


-- name: job_progress
-- One more task of job :job_id done, fenced on the claim; with task_succeeded (and
-- the task's log lines) in one transaction.
UPDATE jobs_job SET progress_done = progress_done + 1
WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s;


-- name: job_completed
-- Job :job_id completed with :job_result and :progress tasks done, fenced on the
-- claim; with its last task's success and log lines in one transaction (and, in the
-- worker's drain, in the transaction of its next claim).
UPDATE jobs_job
SET status = 'completed', result = %(job_result)s, progress_done = %(progress)s,
    error = '', finished_at = %(now)s, heartbeat_at = NULL
WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s;


-- name: release_children
-- Job :job_id completed (in this transaction, under the write lock): count each of its
-- unsettled edges off its child's waiting_on (see postgresql.sql, release_children);
-- settle_edges then marks them settled. Returns each child's id, queue, status and
-- waiting_on.
UPDATE jobs_job SET waiting_on = waiting_on - 1
WHERE id IN (SELECT d.child_id FROM jobs_jobdependency d
             WHERE d.parent_id = %(job_id)s AND NOT d.settled)
  AND EXISTS (SELECT 1 FROM jobs_job p WHERE p.id = %(job_id)s AND p.status = 'completed')
RETURNING id, queue, status, waiting_on;


-- name: settle_edges
-- The edges release_children just counted off: settled, so none is counted twice.
UPDATE jobs_jobdependency SET settled = 1
WHERE parent_id = %(job_id)s AND NOT settled;


-- name: insert_edges
-- The edges of new jobs: :edges is a JSON list of [child_id, parent_id, settled (0/1)].
INSERT INTO jobs_jobdependency (child_id, parent_id, settled)
SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2
FROM json_each(%(edges)s) AS e;


-- name: insert_job
-- A new job (status :status: pending, or a draft); its tasks follow (insert_tasks_of).
-- Nothing when a job with its unique key is pending or running (see postgresql.sql).
INSERT INTO jobs_job (
    job_type, status, config, result, error, release_id, schedule_id,
    created_by_id, queue, lock, priority, run_after, attempts, max_attempts,
    created_at, queued_at, started_at, finished_at, heartbeat_at,
    cancel_requested_at, worker, attempted_by, progress_done, progress_total,
    analysis, lock_limit, unique_key, lock_slot, type_slot, queue_slot, timeout_seconds,
    waiting_on, on_parent_failure, workflow_id, workflow_node, cancelled_by_parent_id)
VALUES (
    %(job_type)s, %(status)s, %(config)s, NULL, '', %(release_id)s, %(schedule_id)s,
    %(created_by_id)s, %(queue)s, %(lock)s, %(priority)s, %(run_after)s, 0,
    %(max_attempts)s, %(created_at)s, %(queued_at)s, NULL, NULL, NULL,
    NULL, '', '[]', 0, %(progress_total)s,
    %(analysis)s, %(lock_limit)s, %(unique_key)s, NULL, NULL, NULL, %(timeout_seconds)s,
    %(waiting_on)s, %(on_parent_failure)s, %(workflow_id)s, %(workflow_node)s, NULL)
ON CONFLICT (unique_key)
    WHERE status IN ('pending', 'running') AND unique_key IS NOT NULL
    DO NOTHING
RETURNING id;


-- name: insert_tasks_of
-- The tasks of new job :job_id, positions 1…n named by :task_names (a JSON list),
-- every other column at its initial value.
INSERT INTO jobs_task (
    job_id, position, name, status, result, error, attempts, progress_done,
    progress_total, started_at, finished_at)
SELECT %(job_id)s, t.key + 1, t.value, 'pending', NULL, '', 0, 0, 0, NULL, NULL
FROM json_each(%(task_names)s) AS t;


-- name: insert_jobs
-- Many new pending jobs at once (bulk creation): :jobs is a JSON list of
-- [job_type, config, release_id, queue, lock, priority, run_after, max_attempts,
-- progress_total, lock_limit, timeout_seconds, waiting_on, on_parent_failure,
-- workflow_node], every other column at its initial value.
-- Returns their ids (in
-- ascending order they are the input order: AUTOINCREMENT under the write lock).
INSERT INTO jobs_job (
    job_type, status, config, result, error, release_id, schedule_id, created_by_id,
    queue, lock, priority, run_after, attempts, max_attempts, created_at, queued_at,
    started_at, finished_at, heartbeat_at, cancel_requested_at, worker, attempted_by,
    progress_done, progress_total, analysis, lock_limit, unique_key, lock_slot, type_slot,
    queue_slot, timeout_seconds, waiting_on, on_parent_failure, workflow_id, workflow_node, cancelled_by_parent_id)
SELECT j.value ->> 0, 'pending', j.value -> 1, NULL, '', j.value ->> 2, NULL,
       %(created_by_id)s, j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6, 0,
       j.value ->> 7, %(created_at)s, %(created_at)s, NULL, NULL, NULL, NULL, '', '[]', 0,
       j.value ->> 8, NULL, j.value ->> 9, NULL, NULL, NULL, NULL, j.value ->> 10,
       j.value ->> 11, j.value ->> 12, %(workflow_id)s, j.value ->> 13, NULL
FROM json_each(%(jobs)s) AS j
RETURNING id;


-- name: insert_tasks
-- The pending tasks of new jobs (bulk creation): :tasks is a JSON list of
-- [job_id, position, name], every other column at its initial value.
INSERT INTO jobs_task (
    job_id, position, name, status, result, error, attempts, progress_done,
    progress_total, started_at, finished_at)
SELECT t.value ->> 0, t.value ->> 1, t.value ->> 2, 'pending', NULL, '', 0, 0, 0, NULL, NULL
FROM json_each(%(tasks)s) AS t;


-- name: insert_logs
-- Log lines of job :job_id in the given order (their ids, the follow cursor, follow
-- it): :lines is a JSON list of [task_id, created_at, level, message].
INSERT INTO jobs_joblog (job_id, task_id, created_at, level, message)
SELECT %(job_id)s, l.value ->> 0, l.value ->> 1, l.value ->> 2, l.value ->> 3
FROM json_each(%(lines)s) AS l;


-- name: enqueue_orm_message
-- A wake-up message in django-q2's ORM broker table, written in the open transaction
-- of the job it wakes (see postgresql.sql).
INSERT INTO django_q_ormq (key, payload, lock)
VALUES (%(key)s, %(payload)s, %(lock)s)
RETURNING id;


-- name: ping
-- The health check's round trip to the database.
SELECT 1 AS ok;

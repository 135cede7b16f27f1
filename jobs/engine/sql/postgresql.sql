-- Jobdeck's hand-written statements for PostgreSQL: the worker's hot path and job
-- creation, where building SQL through the ORM per job cost more CPU than the
-- database spent running it. Loaded by name (jobs/engine/queries.py); each block
-- starts with "-- name: <name>", then comments, then the statement. Parameters are
-- named (%(name)s); every write a worker makes is fenced on its claim: the job is
-- running on the worker's attempt (the fencing token), so a superseded worker (its
-- job swept and re-queued, maybe claimed again) changes nothing.
--
-- The readable definition of "runnable" is JobQuerySet.runnable() (jobs/models.py);
-- tests/unit/jobs/test_claim_property.py keeps the claims in agreement with it.


-- name: claim_next
-- Claim the %(limit)s most urgent runnable jobs of %(queues)s (text[]) for %(worker)s
-- (one, but for a threaded worker's batch): pending, due, and without a lock key or
-- first in line for it (no older job of its key pending, fewer than its lock_limit
-- running; it takes the lowest free slot of the key); highest priority, then oldest.
-- The same statement starts each job's first unfinished task and returns one row per
-- job, most urgent first, with its task list, so the worker runs it without another
-- round trip. This is the claim while no flow rule is set: with a queue or type paused
-- or limited (a jobs_flowsetting row), it claims nothing (one index probe, before any
-- job is read) and the engine runs claim_governed instead.
--
-- Batches: a worker running jobs in threads (jobs/worker/threads.py) asks for as many
-- as it has threads free, so each job claimed starts running as soon as the statement
-- returns: none waits as "running" in a local buffer. Two jobs of one lock key are
-- never in one batch: in the statement's one snapshot the younger has an older one of
-- its key pending (the first-in-line rule), so each key gives a batch at most its head,
-- which takes one slot.
--
-- Races: FOR UPDATE SKIP LOCKED makes concurrent claimers pass over each other's
-- candidates, and the outer status re-check skips a job cancelled meanwhile. Two
-- claimers that both saw a lock key free (neither saw the other's uncommitted start)
-- both give it the same slot: the partial unique index running_lock_slot_unique
-- refuses the second, which the engine reads as "nothing to claim now". The lowest
-- free slot is 0 or one past a taken one, the lowest such that is free; fewer than
-- lock_limit running means it is below lock_limit.
--
-- started_at is read from the clock once (`moment`) while the statement runs, after its
-- snapshot was taken: the snapshot that saw the key's previous job (or a parent) finished
-- is this statement's, so the start is never earlier than that finish. Not
-- statement_timestamp(): in a message of several statements (complete_and_claim) that is
-- when the message arrived, which may be before a job this claim waited for finished.
--
-- Plans: the candidates are locked first (a MATERIALIZED CTE, run once), then updated;
-- the CTEs' rows are handed on as arrays (= ANY(ARRAY(…))), as the planner cannot
-- estimate a CTE's size and, taking it for one row, would join it by walking every
-- pending job and every task. SET LOCAL lasts for this statement's implicit transaction
-- (inside an explicit transaction, until it ends: plans change, never results). The one
-- good plan walks job_pending_claim_idx in order and stops after the first runnable
-- rows; with stale statistics (a burst into a table analysed while nearly empty) the
-- planner may sort every pending row instead, on every claim. JIT is off because the
-- disabled sort's huge cost estimate would make PostgreSQL JIT-compile this millisecond
-- statement.
SET LOCAL enable_sort = off; SET LOCAL jit = off;
WITH moment AS MATERIALIZED (SELECT clock_timestamp() AS at), picked AS MATERIALIZED (
    SELECT j.id FROM jobs_job j
    WHERE j.status = 'pending' AND j.waiting_on = 0
      AND j.queue = ANY(%(queues)s)
      AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
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
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), claimed AS (
    UPDATE jobs_job
    SET status = 'running',
        attempts = attempts + 1,
        worker = %(worker)s,
        started_at = (SELECT at FROM moment),
        heartbeat_at = (SELECT at FROM moment),
        finished_at = NULL,
        attempted_by = attempted_by
            || jsonb_build_array(jsonb_build_array(%(worker)s, (SELECT at FROM moment))),
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
    -- "IS TRUE": the same test, which no index answers, so the planner probes the
    -- primary key (with stale statistics it would walk every pending row instead).
    WHERE jobs_job.id = ANY(ARRAY(SELECT id FROM picked))
      AND (jobs_job.status = 'pending') IS TRUE
    RETURNING jobs_job.*
), started AS (
    UPDATE jobs_task
    SET status = 'running', started_at = (SELECT at FROM moment), finished_at = NULL,
        error = '', attempts = attempts + 1
    WHERE id = ANY(ARRAY(
            SELECT (SELECT t.id FROM jobs_task t
                    WHERE t.job_id = c.id AND t.status <> 'succeeded'
                    ORDER BY t.position LIMIT 1)
            FROM claimed c))
      AND status IN ('pending', 'failed')
    RETURNING id, job_id
)
SELECT claimed.*,
       (SELECT s.id FROM started s WHERE s.job_id = claimed.id) AS started_task_id,
       (SELECT json_agg(json_build_array(t.id, t.position, t.name, t.status, t.result)
                        ORDER BY t.position)
        FROM jobs_task t WHERE t.job_id = claimed.id) AS task_list
FROM claimed
ORDER BY claimed.priority DESC, claimed.id;


-- name: claim_job
-- Claim job %(job_id)s (the one a wake-up names) for %(worker)s if it is runnable
-- and one of %(queues)s: the rules, races and returned row of claim_next (one job).
WITH moment AS MATERIALIZED (SELECT clock_timestamp() AS at), claimed AS (
    UPDATE jobs_job
    SET status = 'running',
        attempts = attempts + 1,
        worker = %(worker)s,
        started_at = (SELECT at FROM moment),
        heartbeat_at = (SELECT at FROM moment),
        finished_at = NULL,
        attempted_by = attempted_by
            || jsonb_build_array(jsonb_build_array(%(worker)s, (SELECT at FROM moment))),
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
          AND j.queue = ANY(%(queues)s)
          AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
          AND (j.lock IS NULL OR (
                NOT EXISTS (
                    SELECT 1 FROM jobs_job k
                    WHERE k.lock = j.lock AND k.status = 'pending' AND k.waiting_on = 0 AND k.id < j.id)
                AND (SELECT count(*) FROM jobs_job k
                     WHERE k.lock = j.lock AND k.status = 'running') < j.lock_limit))
          AND NOT EXISTS (SELECT 1 FROM jobs_flowsetting f
                          WHERE f.paused OR f.concurrency_limit IS NOT NULL
                             OR f.rate_limit IS NOT NULL)
        FOR UPDATE OF j SKIP LOCKED)
      AND status = 'pending'
    RETURNING *
), started AS (
    UPDATE jobs_task
    SET status = 'running', started_at = (SELECT at FROM moment), finished_at = NULL,
        error = '', attempts = attempts + 1
    WHERE id = (
        SELECT t.id FROM jobs_task t
        WHERE t.job_id = (SELECT id FROM claimed) AND t.status <> 'succeeded'
        ORDER BY t.position LIMIT 1)
      AND status IN ('pending', 'failed')
    RETURNING id
)
SELECT claimed.*,
       (SELECT id FROM started) AS started_task_id,
       (SELECT json_agg(json_build_array(t.id, t.position, t.name, t.status, t.result)
                        ORDER BY t.position)
        FROM jobs_task t WHERE t.job_id = claimed.id) AS task_list
FROM claimed;


-- name: claim_governed
-- The claim while flow rules are set (jobs/flow.py): the most urgent runnable job of
-- the open lanes, each lane a (queue, job type) pair that is not paused and not at
-- its rate limit (parallel arrays %(lane_queues)s, %(lane_types)s, with the type's
-- and the queue's concurrency limits %(lane_type_limits)s, %(lane_queue_limits)s,
-- NULL for none), or only job %(job_id)s when given; never a job of a key in
-- %(blocked_keys)s (at its key's rate limit). The lock rule is claim_next's.
--
-- Speed: each lane is one walk of job_pending_lane_idx from its head, and a lane at
-- its concurrency limit stops before reading a job (the count is a per-lane filter):
-- a paused queue or a full type costs nothing however many jobs wait in it.
--
-- Races: a lane's head is locked FOR UPDATE SKIP LOCKED, so concurrent claimers take
-- different jobs. The claimed job takes the lowest free slot of its type and queue
-- when they are limited (as claim_next does for its key): two claimers that both saw
-- the last slot free give it to two jobs, and running_type_slot_unique (or
-- running_queue_slot_unique, running_lock_slot_unique) refuses the second; the engine
-- retries with a fresh snapshot. Rate slots are taken after this statement, in its
-- transaction (take_rate_slot).
SET LOCAL jit = off;
WITH moment AS MATERIALIZED (SELECT clock_timestamp() AS at), lane AS (
    SELECT * FROM UNNEST(%(lane_queues)s::varchar[], %(lane_types)s::varchar[],
                         %(lane_type_limits)s::integer[], %(lane_queue_limits)s::integer[])
         AS l(queue, job_type, type_limit, queue_limit)
), candidate AS (
    SELECT c.id, c.priority, l.type_limit, l.queue_limit
    FROM lane l
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority FROM jobs_job j
        WHERE j.status = 'pending' AND j.waiting_on = 0
          AND j.queue = l.queue
          AND j.job_type = l.job_type
          AND (%(job_id)s::bigint IS NULL OR j.id = %(job_id)s::bigint)
          AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
          AND (j.lock IS NULL OR (
                j.lock <> ALL(%(blocked_keys)s::varchar[])
                AND NOT EXISTS (
                    SELECT 1 FROM jobs_job k
                    WHERE k.lock = j.lock AND k.status = 'pending' AND k.waiting_on = 0 AND k.id < j.id)
                AND (SELECT count(*) FROM jobs_job k
                     WHERE k.lock = j.lock AND k.status = 'running') < j.lock_limit))
          AND (l.type_limit IS NULL OR (
                SELECT count(*) FROM jobs_job r
                WHERE r.status = 'running' AND r.job_type = l.job_type) < l.type_limit)
          AND (l.queue_limit IS NULL OR (
                SELECT count(*) FROM jobs_job r
                WHERE r.status = 'running' AND r.queue = l.queue) < l.queue_limit)
        ORDER BY j.priority DESC, j.id
        LIMIT 1
        FOR UPDATE OF j SKIP LOCKED) c
    ORDER BY c.priority DESC, c.id
    LIMIT 1
), claimed AS (
    UPDATE jobs_job
    SET status = 'running',
        attempts = attempts + 1,
        worker = %(worker)s,
        started_at = (SELECT at FROM moment),
        heartbeat_at = (SELECT at FROM moment),
        finished_at = NULL,
        attempted_by = attempted_by
            || jsonb_build_array(jsonb_build_array(%(worker)s, (SELECT at FROM moment))),
        lock_slot = CASE WHEN jobs_job.lock IS NULL THEN NULL ELSE (
            SELECT min(f.n) FROM (
                SELECT 0 AS n
                UNION ALL
                SELECT r.lock_slot + 1 FROM jobs_job r
                WHERE r.lock = jobs_job.lock AND r.status = 'running') f
            WHERE NOT EXISTS (
                SELECT 1 FROM jobs_job r
                WHERE r.lock = jobs_job.lock AND r.status = 'running' AND r.lock_slot = f.n))
        END,
        type_slot = CASE WHEN c.type_limit IS NULL THEN NULL ELSE (
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
        queue_slot = CASE WHEN c.queue_limit IS NULL THEN NULL ELSE (
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
    FROM candidate c
    WHERE jobs_job.id = c.id AND jobs_job.status = 'pending'
    RETURNING jobs_job.*
), started AS (
    UPDATE jobs_task
    SET status = 'running', started_at = (SELECT at FROM moment), finished_at = NULL,
        error = '', attempts = attempts + 1
    WHERE id = (
        SELECT t.id FROM jobs_task t
        WHERE t.job_id = (SELECT id FROM claimed) AND t.status <> 'succeeded'
        ORDER BY t.position LIMIT 1)
      AND status IN ('pending', 'failed')
    RETURNING id
)
SELECT claimed.*,
       (SELECT id FROM started) AS started_task_id,
       (SELECT json_agg(json_build_array(t.id, t.position, t.name, t.status, t.result)
                        ORDER BY t.position)
        FROM jobs_task t WHERE t.job_id = claimed.id) AS task_list
FROM claimed;


-- name: ensure_rate_slots
-- The %(rate)s slots 0…rate-1 of rate scope %(scope)s, each as if last used long ago
-- (%(epoch)s) where missing; existing ones are kept (their last start still counts).
INSERT INTO jobs_rateslot (scope, slot, started_at)
SELECT %(scope)s, s, %(epoch)s FROM generate_series(0, %(rate)s - 1) AS s
ON CONFLICT (scope, slot) DO NOTHING;


-- name: take_rate_slot
-- A start under rate scope %(scope)s (%(rate)s starts per %(period)s seconds) at
-- %(at)s, the claimed job's started_at: one of its slots below %(rate)s whose last
-- start is at least a period old now records this one. Returns the slot taken, none
-- when the window is full.
--
-- Race: the slot row is locked (SKIP LOCKED passes over one a concurrent claim is
-- taking) and the UPDATE re-checks its age once locked, so two claims never both
-- take one slot: each slot holds at most one start per period, and `rate` slots at
-- most `rate` starts in any window of the period.
UPDATE jobs_rateslot
SET started_at = %(at)s
WHERE id = (
    SELECT id FROM jobs_rateslot
    WHERE scope = %(scope)s AND slot < %(rate)s
      AND started_at <= %(at)s - make_interval(secs => %(period)s)
    ORDER BY started_at, slot
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
  AND started_at <= %(at)s - make_interval(secs => %(period)s)
RETURNING slot;


-- name: start_task
-- Start task %(task_id)s of job %(job_id)s: only while the worker's claim holds
-- (running, attempt %(attempt)s) and nobody asked to cancel, so a cancel request is
-- honoured at each task boundary and a superseded worker stops instead of running
-- tasks beside the new attempt; and only if the task is pending, or failed in an
-- earlier attempt (kept for display; this attempt runs it again).
UPDATE jobs_task
SET status = 'running', started_at = statement_timestamp(), finished_at = NULL,
    error = '', attempts = attempts + 1
WHERE id = %(task_id)s
  AND status IN ('pending', 'failed')
  AND EXISTS (
        SELECT 1 FROM jobs_job
        WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s
          AND cancel_requested_at IS NULL);


-- name: finish_task
-- A task that is not the job's last succeeded: its waiting log lines (arrays of
-- equal length: %(log_task_ids)s, %(log_times)s, %(log_levels)s, %(log_messages)s),
-- its success with %(task_result)s (JSON) and one more task done on the job, in one
-- statement, fenced on the claim (attempt %(attempt)s). Returns the jobs updated:
-- 0 when the claim was lost.
WITH logs AS (
    INSERT INTO jobs_joblog (job_id, task_id, created_at, level, message)
    SELECT %(job_id)s, l.task_id, l.created_at, l.level, l.message
    FROM UNNEST(%(log_task_ids)s::bigint[], %(log_times)s::timestamptz[],
                %(log_levels)s::smallint[], %(log_messages)s::text[])
         AS l(task_id, created_at, level, message)
), task AS (
    UPDATE jobs_task
    SET status = 'succeeded', result = %(task_result)s, finished_at = statement_timestamp()
    WHERE id = %(task_id)s AND status = 'running'
      AND EXISTS (
            SELECT 1 FROM jobs_job
            WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s)
    RETURNING id
), progress AS (
    UPDATE jobs_job SET progress_done = progress_done + 1
    WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s
      AND EXISTS (SELECT 1 FROM task)
    RETURNING id
)
SELECT count(*) FROM progress;


-- name: complete
-- The job's last task succeeded: its waiting log lines (as in finish_task), the
-- task's success with %(task_result)s and the job's completion with %(job_result)s
-- and %(progress)s tasks done, in one statement, fenced on the claim (attempt
-- %(attempt)s). Returns the jobs completed: 0 when the claim was lost. The worker
-- sends it in one round trip and one transaction with its next claim_next.
WITH logs AS (
    INSERT INTO jobs_joblog (job_id, task_id, created_at, level, message)
    SELECT %(job_id)s, l.task_id, l.created_at, l.level, l.message
    FROM UNNEST(%(log_task_ids)s::bigint[], %(log_times)s::timestamptz[],
                %(log_levels)s::smallint[], %(log_messages)s::text[])
         AS l(task_id, created_at, level, message)
), task AS (
    UPDATE jobs_task
    SET status = 'succeeded', result = %(task_result)s, finished_at = statement_timestamp()
    WHERE id = %(task_id)s AND status = 'running'
      AND EXISTS (
            SELECT 1 FROM jobs_job
            WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s)
), done AS (
    UPDATE jobs_job
    SET status = 'completed', result = %(job_result)s, progress_done = %(progress)s,
        error = '', finished_at = statement_timestamp(), heartbeat_at = NULL
    WHERE id = %(job_id)s AND status = 'running' AND attempts = %(attempt)s
    RETURNING id
)
SELECT count(*) FROM done;


-- name: complete_batch
-- complete for several jobs at once (a threaded worker settling the jobs its threads
-- finished meanwhile): parallel arrays %(job_ids)s, %(attempts)s, %(task_ids)s (NULL:
-- no task to mark), %(task_results)s, %(job_results)s (JSON text) and %(progress)s, and
-- every job's waiting log lines (%(log_job_ids)s and finish_task's arrays), in one
-- statement; each write fenced on its own job's claim. Returns the ids of the jobs
-- completed (a job whose claim was lost is not among them).
WITH c AS MATERIALIZED (
    SELECT * FROM UNNEST(%(job_ids)s::bigint[], %(attempts)s::integer[],
                         %(task_ids)s::bigint[], %(task_results)s::jsonb[],
                         %(job_results)s::jsonb[], %(progress)s::integer[])
         AS c(job_id, attempt, task_id, task_result, job_result, progress)
), logs AS (
    INSERT INTO jobs_joblog (job_id, task_id, created_at, level, message)
    SELECT l.job_id, l.task_id, l.created_at, l.level, l.message
    FROM UNNEST(%(log_job_ids)s::bigint[], %(log_task_ids)s::bigint[],
                %(log_times)s::timestamptz[], %(log_levels)s::smallint[],
                %(log_messages)s::text[])
         AS l(job_id, task_id, created_at, level, message)
), task AS (
    UPDATE jobs_task
    SET status = 'succeeded', result = c.task_result, finished_at = statement_timestamp()
    FROM c
    WHERE jobs_task.id = c.task_id AND jobs_task.status = 'running'
      AND EXISTS (
            SELECT 1 FROM jobs_job
            WHERE id = c.job_id AND status = 'running' AND attempts = c.attempt)
), done AS (
    UPDATE jobs_job
    SET status = 'completed', result = c.job_result, progress_done = c.progress,
        error = '', finished_at = statement_timestamp(), heartbeat_at = NULL
    FROM c
    WHERE jobs_job.id = c.job_id AND jobs_job.status = 'running'
      AND jobs_job.attempts = c.attempt
    RETURNING jobs_job.id
)
SELECT id FROM done;


-- name: release_children
-- Job %(job_id)s completed (in this transaction): settle its unsettled edges to its
-- children and count each off its child's waiting_on (jobs/engine/dependencies.py).
-- Returns each child's id, queue, status and waiting_on: those at 0 and pending may
-- run now. Sent after "complete", as a statement of its own: its snapshot is taken
-- after the parent's UPDATE, which waited for any transaction that locked the parent
-- to give it a child, so that child's edge is seen here (or was created settled).
-- Two parents of one child completing at once decrement it one after the other
-- (row lock): exactly one of them returns it at 0. Nothing when the job did not
-- complete (a lost claim) or has no children: one index probe.
WITH settled AS (
    UPDATE jobs_jobdependency d SET settled = true
    WHERE d.parent_id = %(job_id)s AND NOT d.settled
      AND EXISTS (SELECT 1 FROM jobs_job p WHERE p.id = %(job_id)s AND p.status = 'completed')
    RETURNING d.child_id
)
UPDATE jobs_job SET waiting_on = jobs_job.waiting_on - 1
FROM settled s
WHERE jobs_job.id = s.child_id
RETURNING jobs_job.id, jobs_job.queue, jobs_job.status, jobs_job.waiting_on;


-- name: release_children_batch
-- release_children for the jobs %(job_ids)s (bigint[]) completed in this transaction
-- (complete_batch), with the same races: a child of two of them is counted off once
-- for each (its settled edges grouped), so it reaches 0 once. The children are locked
-- in id order before they are counted off: two batches releasing children they share
-- take their locks in one order, never each waiting for the other.
WITH settled AS (
    UPDATE jobs_jobdependency d SET settled = true
    WHERE d.parent_id = ANY(%(job_ids)s::bigint[]) AND NOT d.settled
      AND EXISTS (SELECT 1 FROM jobs_job p WHERE p.id = d.parent_id AND p.status = 'completed')
    RETURNING d.child_id
), counted AS MATERIALIZED (
    SELECT child_id, count(*) AS n FROM settled GROUP BY child_id
), locked AS MATERIALIZED (
    SELECT j.id FROM jobs_job j
    WHERE j.id = ANY(ARRAY(SELECT child_id FROM counted))
    ORDER BY j.id
    FOR NO KEY UPDATE
)
UPDATE jobs_job SET waiting_on = jobs_job.waiting_on - counted.n
FROM counted
WHERE jobs_job.id = counted.child_id
  AND jobs_job.id = ANY(ARRAY(SELECT id FROM locked))
RETURNING jobs_job.id, jobs_job.queue, jobs_job.status, jobs_job.waiting_on;


-- name: insert_edges
-- The edges of new jobs (parallel arrays %(child_ids)s, %(parent_ids)s, %(settled)s):
-- a workflow's 20,000 edges in one statement, not an ORM object each.
INSERT INTO jobs_jobdependency (child_id, parent_id, settled)
SELECT e.child_id, e.parent_id, e.settled
FROM UNNEST(%(child_ids)s::bigint[], %(parent_ids)s::bigint[], %(settled)s::boolean[])
     AS e(child_id, parent_id, settled);


-- name: insert_job
-- A new job (status %(status)s: pending, or a draft) and its tasks, positions 1…n
-- named by %(task_names)s (text[]), every other column at its initial value, in
-- one statement: the tasks take the job's id on the server. Returns the job's id;
-- nothing when a job with its unique key %(unique_key)s is pending or running. That
-- is the unique_active_key index's answer, so 20 concurrent creates with one key make
-- one job: a second insert waits for the first's transaction, then does nothing.
WITH job AS (
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
    RETURNING id
), tasks AS (
    INSERT INTO jobs_task (
        job_id, position, name, status, result, error, attempts, progress_done,
        progress_total, started_at, finished_at)
    SELECT job.id, t.position, t.name, 'pending', NULL, '', 0, 0, 0, NULL, NULL
    FROM job, UNNEST(%(task_names)s::text[]) WITH ORDINALITY AS t(name, position)
)
SELECT id FROM job;


-- name: insert_jobs
-- Many new pending jobs at once (bulk creation), one array per varying column, all
-- of equal length; every other column at its initial value. Returns their ids (in
-- ascending order they are the input order: one statement draws them in row order).
INSERT INTO jobs_job (
    job_type, status, config, result, error, release_id, schedule_id, created_by_id,
    queue, lock, priority, run_after, attempts, max_attempts, created_at, queued_at,
    started_at, finished_at, heartbeat_at, cancel_requested_at, worker, attempted_by,
    progress_done, progress_total, analysis, lock_limit, unique_key, lock_slot, type_slot,
    queue_slot, timeout_seconds, waiting_on, on_parent_failure, workflow_id, workflow_node, cancelled_by_parent_id)
SELECT j.job_type, 'pending', j.config, NULL, '', j.release_id, NULL, %(created_by_id)s,
       j.queue, j.lock, j.priority, j.run_after, 0, j.max_attempts, %(created_at)s,
       %(created_at)s, NULL, NULL, NULL, NULL, '', '[]', 0, j.progress_total, NULL,
       j.lock_limit, NULL, NULL, NULL, NULL, j.timeout_seconds, j.waiting_on,
       j.on_parent_failure, %(workflow_id)s::bigint, j.workflow_node, NULL
FROM UNNEST(%(job_types)s::varchar[], %(configs)s::jsonb[], %(release_ids)s::bigint[],
            %(queues)s::varchar[], %(locks)s::varchar[], %(priorities)s::smallint[],
            %(run_afters)s::timestamptz[], %(max_attempts)s::integer[],
            %(progress_totals)s::integer[], %(lock_limits)s::integer[],
            %(timeout_seconds)s::integer[], %(waiting_ons)s::integer[],
            %(on_parent_failures)s::varchar[], %(workflow_nodes)s::varchar[])
     AS j(job_type, config, release_id, queue, lock, priority, run_after, max_attempts,
          progress_total, lock_limit, timeout_seconds, waiting_on, on_parent_failure,
          workflow_node)
RETURNING id;


-- name: insert_tasks
-- The pending tasks of new jobs (bulk creation): parallel arrays %(job_ids)s,
-- %(positions)s and %(names)s, every other column at its initial value.
INSERT INTO jobs_task (
    job_id, position, name, status, result, error, attempts, progress_done,
    progress_total, started_at, finished_at)
SELECT t.job_id, t.position, t.name, 'pending', NULL, '', 0, 0, 0, NULL, NULL
FROM UNNEST(%(job_ids)s::bigint[], %(positions)s::integer[], %(names)s::text[])
     AS t(job_id, position, name);


-- name: insert_logs
-- Log lines of job %(job_id)s in the given order (their ids, the follow cursor,
-- follow it): parallel arrays as in finish_task.
INSERT INTO jobs_joblog (job_id, task_id, created_at, level, message)
SELECT %(job_id)s, l.task_id, l.created_at, l.level, l.message
FROM UNNEST(%(log_task_ids)s::bigint[], %(log_times)s::timestamptz[],
            %(log_levels)s::smallint[], %(log_messages)s::text[])
     AS l(task_id, created_at, level, message);


-- name: enqueue_orm_message
-- A wake-up message in django-q2's ORM broker table, written in the open transaction
-- of the job it wakes (jobs.broker: a transactional outbox); :lock is the insert
-- time, already past, so workers see it once the transaction commits.
INSERT INTO django_q_ormq (key, payload, lock)
VALUES (%(key)s, %(payload)s, %(lock)s)
RETURNING id;


-- name: ping
-- The health check's round trip to the database.
SELECT 1 AS ok;


-- name: estimated_rows
-- The planner's estimate of the rows of table %(table)s (pg_class.reltuples, kept by
-- ANALYZE and autovacuum): the admin's changelist shows it instead of counting a big
-- table (COUNT(*) reads every row).
SELECT reltuples::bigint AS estimate FROM pg_class WHERE oid = to_regclass(%(table)s);


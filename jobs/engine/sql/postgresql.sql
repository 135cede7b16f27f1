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
-- Claim the most urgent runnable job of %(queues)s (text[]) for %(worker)s: pending,
-- due, and without a lock key or first in line for it (nothing of its key running,
-- no older job of its key pending); highest priority, then oldest. The same
-- statement starts the job's first unfinished task and returns the job's row with
-- its task list, so the worker runs it without another round trip.
--
-- Races: FOR UPDATE SKIP LOCKED makes concurrent claimers pass over each other's
-- candidate, and the outer "status = 'pending'" re-check skips a job cancelled
-- meanwhile. Two claimers that both saw a lock key free (neither saw the other's
-- uncommitted start) both make a job of it running: the partial unique index
-- one_running_job_per_lock refuses the second, which the engine reads as "nothing
-- to claim now". started_at is statement_timestamp(): the snapshot that saw the
-- key's previous job finished is this statement's, so the start is never earlier.
--
-- SET LOCAL lasts for this statement's implicit transaction (inside an explicit
-- transaction, until it ends: plans change, never results). The one good plan walks
-- job_pending_claim_idx in order and stops at the first runnable row; with stale
-- statistics (a burst into a table analysed while nearly empty) the planner may sort
-- every pending row instead, on every claim. JIT is off because the disabled sort's
-- huge cost estimate would make PostgreSQL JIT-compile this millisecond statement.
SET LOCAL enable_sort = off; SET LOCAL jit = off;
WITH claimed AS (
    UPDATE jobs_job
    SET status = 'running',
        attempts = attempts + 1,
        worker = %(worker)s,
        started_at = statement_timestamp(),
        heartbeat_at = statement_timestamp(),
        finished_at = NULL,
        attempted_by = attempted_by
            || jsonb_build_array(jsonb_build_array(%(worker)s, statement_timestamp()))
    WHERE id = (
        SELECT j.id FROM jobs_job j
        WHERE j.status = 'pending'
          AND j.queue = ANY(%(queues)s)
          AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
          AND (j.lock IS NULL OR NOT EXISTS (
                SELECT 1 FROM jobs_job k
                WHERE k.lock = j.lock
                  AND (k.status = 'running' OR (k.status = 'pending' AND k.id < j.id))))
        ORDER BY j.priority DESC, j.id
        LIMIT 1
        FOR UPDATE OF j SKIP LOCKED)
      AND status = 'pending'
    RETURNING *
), started AS (
    UPDATE jobs_task
    SET status = 'running', started_at = statement_timestamp(), finished_at = NULL,
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


-- name: claim_job
-- Claim job %(job_id)s (the one a wake-up names) for %(worker)s if it is runnable
-- and one of %(queues)s: the rules, races and returned row of claim_next.
WITH claimed AS (
    UPDATE jobs_job
    SET status = 'running',
        attempts = attempts + 1,
        worker = %(worker)s,
        started_at = statement_timestamp(),
        heartbeat_at = statement_timestamp(),
        finished_at = NULL,
        attempted_by = attempted_by
            || jsonb_build_array(jsonb_build_array(%(worker)s, statement_timestamp()))
    WHERE id = (
        SELECT j.id FROM jobs_job j
        WHERE j.id = %(job_id)s
          AND j.status = 'pending'
          AND j.queue = ANY(%(queues)s)
          AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
          AND (j.lock IS NULL OR NOT EXISTS (
                SELECT 1 FROM jobs_job k
                WHERE k.lock = j.lock
                  AND (k.status = 'running' OR (k.status = 'pending' AND k.id < j.id))))
        FOR UPDATE OF j SKIP LOCKED)
      AND status = 'pending'
    RETURNING *
), started AS (
    UPDATE jobs_task
    SET status = 'running', started_at = statement_timestamp(), finished_at = NULL,
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


-- name: insert_job
-- A new job (status %(status)s: pending, or a draft) and its tasks, positions 1…n
-- named by %(task_names)s (text[]), every other column at its initial value, in
-- one statement: the tasks take the job's id on the server. Returns the job's id.
WITH job AS (
    INSERT INTO jobs_job (
        job_type, status, config, result, error, release_id, schedule_id,
        created_by_id, queue, lock, priority, run_after, attempts, max_attempts,
        created_at, queued_at, started_at, finished_at, heartbeat_at,
        cancel_requested_at, worker, attempted_by, progress_done, progress_total,
        analysis, timeout_seconds)
    VALUES (
        %(job_type)s, %(status)s, %(config)s, NULL, '', %(release_id)s, %(schedule_id)s,
        %(created_by_id)s, %(queue)s, %(lock)s, %(priority)s, %(run_after)s, 0,
        %(max_attempts)s, %(created_at)s, %(queued_at)s, NULL, NULL, NULL,
        NULL, '', '[]', 0, %(progress_total)s,
        %(analysis)s, %(timeout_seconds)s)
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
    progress_done, progress_total, analysis, timeout_seconds)
SELECT j.job_type, 'pending', j.config, NULL, '', j.release_id, NULL, %(created_by_id)s,
       j.queue, j.lock, j.priority, j.run_after, 0, j.max_attempts, %(created_at)s,
       %(created_at)s, NULL, NULL, NULL, NULL, '', '[]', 0, j.progress_total, NULL,
       j.timeout_seconds
FROM UNNEST(%(job_types)s::varchar[], %(configs)s::jsonb[], %(release_ids)s::bigint[],
            %(queues)s::varchar[], %(locks)s::varchar[], %(priorities)s::smallint[],
            %(run_afters)s::timestamptz[], %(max_attempts)s::integer[],
            %(progress_totals)s::integer[], %(timeout_seconds)s::integer[])
     AS j(job_type, config, release_id, queue, lock, priority, run_after, max_attempts,
          progress_total, timeout_seconds)
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


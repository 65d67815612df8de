/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* pc_parent.c: the root parent.  It forks every pool's children, reaps
 * and respawns them, and carries out stop, restart, graceful and
 * graceful-stop.  It never serves a request.
 *
 * Every slot belongs to one pool for the life of a configuration, so
 * respawning is one-for-one: a dead child's slot gets a new child of
 * the same pool.  A pool whose child cannot drop privileges (exit code
 * APEXIT_CHILDFATAL) is not respawned until the next restart; a pool
 * whose children keep dying right after start is held off for a while.
 */

#include "perchild.h"
#include "pc_affinity.h"
#include "pc_orphan.h"
#include "pc_pods.h"
#include "pc_stall.h"
#include "http_log.h"
#include "http_main.h"
#include "apr_strings.h"
#include "apr_atomic.h"

#include <unistd.h>
#include <signal.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1 */
#endif

APLOG_USE_MODULE(mpm_perchild);

/* A child that dies this soon after its start counts as a fast death. */
#define PC_FAST_DEATH     apr_time_from_sec(5)
/* After this many fast deaths in a row its pool is held off ... */
#define PC_FAST_DEATHS    5
/* ... for this long. */
#define PC_HOLD_OFF       apr_time_from_sec(10)
/* A child killed by SIGKILL that soon is replaced after this long ... */
#define PC_KILLED_PAUSE   apr_time_from_sec(1)
/* ... and said at most this often per pool. */
#define PC_KILLED_SAY     apr_time_from_sec(60)

/* Per-generation parent state, in pconf. */
static apr_time_t *slot_started;   /* when each slot's child was forked */
static apr_time_t *slot_paused;    /* no new child in the slot before */
static int *pool_disabled;         /* 1: cannot drop privileges */
static apr_time_t *pool_fail_until;   /* held off until */
static int *pool_fast_deaths;         /* in a row */
static apr_time_t *pool_killed_said;  /* last PC0216 */
/* In shared memory, so that children see it: 1 while a pool is disabled
 * or held off.  Only the parent may write it (a tenant that could would
 * have another pool's vhosts answered 503 everywhere): a sealed memfd,
 * which children map again read-only. */
static volatile apr_uint32_t *pool_down;
static int pool_down_fd = -1;
static apr_size_t pool_down_len;

int pc_parent_pool_down(int pool)
{
    return pool_down != NULL && pool >= 0
           && pool < pc_conf->pools->nelts && pool_down[pool] != 0;
}

static void set_pool_down(int pool, int down)
{
    if (pool_down != NULL) {
        apr_atomic_set32(&pool_down[pool], down ? 1 : 0);
    }
}

static apr_status_t unmap_pool_down(void *data)
{
    if (pool_down != NULL) {
        munmap((void *)pool_down, pool_down_len);
        pool_down = NULL;
    }
    if (pool_down_fd >= 0) {
        close(pool_down_fd);
        pool_down_fd = -1;
    }
    return APR_SUCCESS;
}

/* The parent's writable mapping, made before the seal: the seal forbids
 * every later writable mapping, write(2) and growing or shrinking. */
static void map_pool_down(int n)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p;

    pool_down_len = ((n * sizeof(apr_uint32_t)) / page + 1) * page;
    pool_down_fd = memfd_create("perchild-pool-state",
                                MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (pool_down_fd < 0 || ftruncate(pool_down_fd, pool_down_len) != 0) {
        unmap_pool_down(NULL);
        return;
    }
    p = mmap(NULL, pool_down_len, PROT_READ | PROT_WRITE, MAP_SHARED,
             pool_down_fd, 0);
    if (p == MAP_FAILED || fcntl(pool_down_fd, F_ADD_SEALS, F_SEAL_SHRINK
                                 | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) != 0) {
        if (p != MAP_FAILED) {
            munmap(p, pool_down_len);
        }
        unmap_pool_down(NULL);
        return;
    }
    pool_down = p;
    apr_pool_cleanup_register(pc_pconf, NULL, unmap_pool_down,
                              apr_pool_cleanup_null);
}

int pc_parent_child_init(void)
{
    void *p;

    if (pool_down == NULL) {
        return 0;
    }
    /* In place of the inherited writable mapping: one made after the
     * seal, which mprotect() cannot make writable again. */
    p = mmap((void *)pool_down, pool_down_len, PROT_READ,
             MAP_SHARED | MAP_FIXED, pool_down_fd, 0);
    close(pool_down_fd);
    pool_down_fd = -1;
    if (p == MAP_FAILED) {
        return errno;
    }
    return 0;
}

/* At a restart: the previous generation's children keep reading its
 * pool-state page.  Keep the parent's writable mapping of it, and the
 * identities of its pools, past the configuration's end. */
static void keep_old_pool_state(void)
{
    int i, n = pc_conf->pools->nelts;

    if (pool_down == NULL || pc_retained->old_down != NULL) {
        return;
    }
    pc_retained->old_uids = malloc(n * sizeof(uid_t));
    pc_retained->old_gids = malloc(n * sizeof(gid_t));
    if (pc_retained->old_uids == NULL || pc_retained->old_gids == NULL) {
        free(pc_retained->old_uids);
        free(pc_retained->old_gids);
        pc_retained->old_uids = NULL;
        pc_retained->old_gids = NULL;
        return;
    }
    for (i = 0; i < n; i++) {
        pc_retained->old_uids[i] = pc_pools_get(i)->uid;
        pc_retained->old_gids[i] = pc_pools_get(i)->gid;
    }
    pc_retained->old_npools = n;
    pc_retained->old_down = pool_down;
    pc_retained->old_down_len = pool_down_len;
    pool_down = NULL;             /* pconf's cleanup leaves it mapped */
}

static int identity_kept(uid_t uid, gid_t gid)
{
    int i;

    for (i = 0; i < pc_conf->pools->nelts; i++) {
        if (pc_pools_get(i)->uid == uid && pc_pools_get(i)->gid == gid) {
            return 1;
        }
    }
    return 0;
}

/* With the new configuration read: the previous generation's children
 * see the pools the restart removed as down, so a request they read
 * for one of them gets 503 at once rather than going into a channel
 * whose last readers are leaving. */
static void retire_gone_pools(void)
{
    int i;

    if (pc_retained->old_down == NULL) {
        return;
    }
    for (i = 0; i < pc_retained->old_npools; i++) {
        /* A generation of one pool has no channels: nobody of it would
         * read what an old child sends to a kept pool either. */
        if (pc_conf->pools->nelts < 2
            || !identity_kept(pc_retained->old_uids[i],
                              pc_retained->old_gids[i])) {
            apr_atomic_set32(&pc_retained->old_down[i], 1);
        }
    }
    munmap((void *)pc_retained->old_down, pc_retained->old_down_len);
    free(pc_retained->old_uids);
    free(pc_retained->old_gids);
    pc_retained->old_down = NULL;
    pc_retained->old_uids = NULL;
    pc_retained->old_gids = NULL;
}

static void ensure_pool_state(void)
{
    int n = pc_conf->pools->nelts;

    /* Every generation tries every pool afresh: a restart is what an
     * administrator does after fixing what made a pool's children die,
     * and a pool that still cannot run is held off again within
     * seconds. */
    pool_fail_until = apr_pcalloc(pc_pconf, n * sizeof(apr_time_t));
    pool_fast_deaths = apr_pcalloc(pc_pconf, n * sizeof(int));
    slot_started = apr_pcalloc(pc_pconf, pc_conf->server_limit
                                         * sizeof(apr_time_t));
    slot_paused = apr_pcalloc(pc_pconf, pc_conf->server_limit
                                        * sizeof(apr_time_t));
    pool_disabled = apr_pcalloc(pc_pconf, n * sizeof(int));
    pool_killed_said = apr_pcalloc(pc_pconf, n * sizeof(apr_time_t));
    map_pool_down(n);       /* unmapped with pconf, at the generation's end */
    retire_gone_pools();
}

static const char *slot_label(int slot)
{
    return pc_pools_label(pc_pools_get(pc_pools_pool_of_slot(slot)));
}

/* Children of a previous generation that lost their slot to a new one
 * are remembered with their pool's label, for their last log line, and
 * the slot, whose scoreboard entries they went on writing. */
typedef struct lost_t {
    const char *label;
    int slot;
} lost_t;

static void lost_init(void)
{
    if (pc_retained->lost == NULL) {
        apr_pool_create(&pc_retained->lost_pool, ap_pglobal);
        pc_retained->lost = apr_hash_make(pc_retained->lost_pool);
        pc_retained->slot_labels = apr_pcalloc(pc_retained->lost_pool,
                                               pc_conf->server_limit
                                               * sizeof(char *));
    }
}

static void lost_remember(pid_t pid, const char *label, int slot)
{
    lost_t *lost = apr_palloc(pc_retained->lost_pool, sizeof(*lost));
    pid_t *key;

    if (apr_hash_count(pc_retained->lost) > 4 * PC_MAX_SERVER_LIMIT) {
        apr_hash_clear(pc_retained->lost);
    }
    key = apr_pmemdup(pc_retained->lost_pool, &pid, sizeof(pid));
    lost->label = apr_pstrdup(pc_retained->lost_pool, label);
    lost->slot = slot;
    apr_hash_set(pc_retained->lost, key, sizeof(pid), lost);
}

/* What was remembered of 'pid' (forgotten now); NULL if nothing. */
static const lost_t *lost_take(pid_t pid)
{
    const lost_t *lost = NULL;

    if (pc_retained->lost != NULL) {
        lost = apr_hash_get(pc_retained->lost, &pid, sizeof(pid));
        apr_hash_set(pc_retained->lost, &pid, sizeof(pid), NULL);
    }
    return lost;
}

/* An old child that shared 'slot' with its successor is gone.  The
 * last thing each of its threads wrote there was 'G' (finishing), over
 * entries that are the successor's, whose idle threads write nothing
 * until they next serve: without this, server-status would show them
 * as finishing, and busy, for as long as they stay idle. */
static void settle_shared_slot(int slot)
{
    int t, running = pc_slots_pid(slot) != 0;

    if (running && pc_slots_gen(slot) != pc_retained->mpm->my_generation) {
        return;
    }
    for (t = 0; t < pc_conf->thread_limit; t++) {
        worker_score *ws = ap_get_scoreboard_worker_from_indexes(slot, t);

        /* (A successor that is gone too left the slot empty.) */
        if (ws->status == SERVER_GRACEFUL) {
            ws->status = running && t < pc_conf->threads_per_child
                         ? SERVER_READY : SERVER_DEAD;
        }
    }
}

/* A child that still had its slot is gone: its threads' entries are
 * dead (server-status shows a slot no new child took as empty, not as
 * 'G' for good). */
static void note_slot_child_killed(int slot)
{
    pid_t pid = pc_slots_pid(slot);
    ap_generation_t gen = pc_slots_gen(slot);
    int t;

    if (gen == pc_retained->mpm->my_generation) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "PC0201: Child %d stopped: pid %" APR_PID_T_FMT
                     ", gen %d, pool %s", slot, pid, (int)gen,
                     slot_label(slot));
    }
    else {
        /* Its pool is the one the slot had then, not the one the slot
         * may have (or not have) in this generation's layout. */
        const char *label = pc_retained->slot_labels[slot];

        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "PC0202: Child stopped: pid %" APR_PID_T_FMT
                     ", gen %d, pool %s (previous generation)", pid,
                     (int)gen, label ? label : "?");
    }
    ap_run_child_status(ap_server_conf, pid, gen, slot, MPM_CHILD_EXITED);
    for (t = 0; t < pc_conf->thread_limit; t++) {
        ap_update_child_status_from_indexes(slot, t, SERVER_DEAD, NULL);
    }
    pc_slots_clear(slot);
}

/* Also httpd's callback for what its reclaim loops reaped, by pids they
 * read from the scoreboard: a pid in a slot that is not the one the
 * parent forked there was written by a tenant, and says nothing. */
static void note_child_killed(int slot, pid_t pid, ap_generation_t gen)
{
    if (slot != -1) {
        if (pid == pc_slots_pid(slot)) {
            note_slot_child_killed(slot);
        }
    }
    else {
        const lost_t *lost = lost_take(pid);

        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "PC0202: Child stopped: pid %" APR_PID_T_FMT
                     ", gen %d, pool %s (previous generation)", pid,
                     (int)gen, lost ? lost->label : "?");
        ap_run_child_status(ap_server_conf, pid, gen, -1, MPM_CHILD_EXITED);
        if (lost != NULL) {
            settle_shared_slot(lost->slot);
        }
    }
}

/* What a slot held before a new child was forked into it. */
typedef struct {
    pid_t pid;
    ap_generation_t generation;
} slot_before_t;

static void note_child_started(int slot, pid_t pid, const slot_before_t *old)
{
    ap_generation_t gen = pc_retained->mpm->my_generation;

    if (old->pid != 0) {
        /* An old generation's child still finishes its requests in this
         * slot: remember it so that stop can still reap it. */
        ap_run_child_status(ap_server_conf, old->pid, old->generation, slot,
                            MPM_CHILD_LOST_SLOT);
        ap_register_extra_mpm_process(old->pid, old->generation);
        lost_remember(old->pid, pc_retained->slot_labels[slot]
                                ? pc_retained->slot_labels[slot] : "?",
                      slot);
    }
    pc_slots_set(slot, pid, gen);
    ap_scoreboard_image->parent[slot].quiescing = 0;
    if (pc_retained->slot_labels[slot] == NULL
        || strcmp(pc_retained->slot_labels[slot], slot_label(slot)) != 0) {
        pc_retained->slot_labels[slot] = apr_pstrdup(pc_retained->lost_pool,
                                                     slot_label(slot));
    }
    ap_run_child_status(ap_server_conf, pid, gen, slot, MPM_CHILD_STARTED);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                 "PC0203: Child %d started: pid %" APR_PID_T_FMT
                 ", gen %d, pool %s", slot, pid, (int)gen, slot_label(slot));
}

static int make_child(server_rec *s, int slot)
{
    int pool = pc_pools_pool_of_slot(slot);
    slot_before_t old;
    pid_t pid;
    /* Every slot of the generation's layout, not only those forked so
     * far: a child answers AP_MPMQ_MAX_DAEMON_USED (mod_info's "Max
     * Daemons") with the value it was forked with. */
    int used = slot + 1 > pc_conf->total_children ? slot + 1
                                                  : pc_conf->total_children;

    if (used > pc_retained->max_daemons_limit) {
        pc_retained->max_daemons_limit = used;
    }
    old.pid = pc_slots_pid(slot);
    old.generation = pc_slots_gen(slot);
    if (pc_one_process) {
        note_child_started(slot, getpid(), &old);
        pc_child_main(slot, pool);
    }
    pid = fork();
    if (pid == -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s,
                     "PC0204: fork of a child of pool %s failed",
                     slot_label(slot));
        /* Don't spin on a system out of processes. */
        apr_sleep(apr_time_from_sec(1));
        return -1;
    }
    if (pid == 0) {
        pc_child_main(slot, pool);
    }
    slot_started[slot] = apr_time_now();
    note_child_started(slot, pid, &old);
    return 0;
}

static int pool_may_start(int pool, apr_time_t now)
{
    int may = !pool_disabled[pool]
              && now >= pool_fail_until[pool];

    set_pool_down(pool, !may);
    return may;
}

/* Starts a child in every empty slot whose pool may run. */
static void fill_slots(server_rec *s)
{
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < pc_conf->total_children; i++) {
        int pool = pc_pools_pool_of_slot(i);

        if (pc_slots_pid(i) != 0
            && pc_slots_gen(i) == pc_retained->mpm->my_generation) {
            continue;
        }
        if (pool < 0 || !pool_may_start(pool, now)
            || now < slot_paused[i]) {
            continue;
        }
        if (make_child(s, i) < 0) {
            break;
        }
        pc_pods_successor_started(pool);
    }
}

static int all_pools_disabled(void)
{
    int i;

    for (i = 0; i < pc_conf->pools->nelts; i++) {
        if (!pool_disabled[i] && pc_pools_get(i)->slots > 0) {
            return 0;
        }
    }
    return 1;
}

/* Bookkeeping for a dead child of the current generation. */
static void child_died(int slot, int processed, int status,
                       apr_exit_why_e why)
{
    int pool = pc_pools_pool_of_slot(slot);
    apr_time_t now = apr_time_now();

    note_slot_child_killed(slot);
    if (pool < 0) {
        return;
    }
    if (processed == APEXIT_CHILDFATAL) {
        pool_disabled[pool] = 1;
        set_pool_down(pool, 1);
        ap_log_error(APLOG_MARK, APLOG_ALERT, 0, ap_server_conf,
                     "PC0205: a child of pool %s could not start as its "
                     "user (see above); the pool is not respawned until "
                     "the next restart, and its vhosts get 503",
                     pc_pools_label(pc_pools_get(pool)));
        if (all_pools_disabled()) {
            /* Nobody would ever accept: stop rather than leave clients
             * waiting in the listen backlog. */
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, ap_server_conf,
                         "PC0213: no pool can run; shutting down");
            pc_retained->mpm->shutdown_pending = 1;
            pc_retained->mpm->is_ungraceful = 1;
        }
        return;
    }
    if ((APR_PROC_CHECK_EXIT(why) && status == 0)
        || now - slot_started[slot] >= PC_FAST_DEATH) {
        /* A clean exit (MaxConnectionsPerChild) or a long life: not a
         * crash loop. */
        pool_fast_deaths[pool] = 0;
        return;
    }
    if (APR_PROC_CHECK_SIGNALED(why) && status == SIGKILL) {
        /* Killed from outside (an administrator, the OOM killer), not a
         * crash: replaced, only not at once, and the pool's vhosts are
         * not answered 503 meanwhile, as for a pool held off. */
        slot_paused[slot] = now + PC_KILLED_PAUSE;
        if (now - pool_killed_said[pool] >= PC_KILLED_SAY) {
            /* httpd says nothing of a SIGKILL; a loop of them would
             * otherwise go unnoticed. */
            pool_killed_said[pool] = now;
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                         "PC0216: a child of pool %s was killed (SIGKILL) "
                         "%d ms after its start; replaced in a second "
                         "(if this repeats: the OOM killer, a memory or "
                         "CPU limit?)", pc_pools_label(pc_pools_get(pool)),
                         (int)apr_time_as_msec(now - slot_started[slot]));
        }
        return;
    }
    if (++pool_fast_deaths[pool] >= PC_FAST_DEATHS) {
        pool_fast_deaths[pool] = 0;
        pool_fail_until[pool] = now + PC_HOLD_OFF;
        set_pool_down(pool, 1);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PC0206: children of pool %s die right after start; "
                     "holding the pool off for %d seconds",
                     pc_pools_label(pc_pools_get(pool)),
                     (int)apr_time_sec(PC_HOLD_OFF));
    }
}

static void reap_one(apr_proc_t *pid, apr_exit_why_e why, int status)
{
    int processed, slot;
    ap_generation_t old_gen;

    if (pc_stall_reaped(pid->pid)
        || pc_orphan_reaped(pid->pid, APR_PROC_CHECK_EXIT(why)
                                      && status != 0)) {
        return;                   /* a helper (pc_stall.c, pc_orphan.c) */
    }
    slot = pc_slots_find(pid->pid);
    if (slot >= 0 && APR_PROC_CHECK_EXIT(why)
        && status == APEXIT_CHILDFATAL) {
        /* httpd would log AH00050, "Apache is exiting!": true under
         * worker, false here (only that pool stops; PC0205 says so). */
        processed = APEXIT_CHILDFATAL;
    }
    else {
        processed = ap_process_child_status(pid, why, status);
    }

    if (slot >= 0) {
        if (pc_slots_gen(slot) == pc_retained->mpm->my_generation) {
            child_died(slot, processed, status, why);
        }
        else {
            note_slot_child_killed(slot);
        }
    }
    else if (ap_unregister_extra_mpm_process(pid->pid, &old_gen) == 1) {
        note_child_killed(-1, pid->pid, old_gen);
    }
#if APR_HAS_OTHER_CHILD
    else if (apr_proc_other_child_alert(pid, APR_OC_REASON_DEATH, status)
             == 0) {
        /* A piped logger or another module's helper: handled. */
    }
#endif
}

/* httpd's ap_wait_or_timeout, with a tenth of its one-second sleep: a
 * pool of one child (most tenants of a shared host) has no other child
 * to serve it while its child is replaced (MaxConnectionsPerChild, a
 * crash), and its connections wait in the channel meanwhile.  Monitor
 * hooks still run about every ten seconds. */
#define PC_WAIT_TICK apr_time_from_msec(100)
#define PC_MONITOR_TICKS 100

static void wait_or_timeout(apr_exit_why_e *why, int *status,
                            apr_proc_t *ret)
{
    static int ticks;
    apr_status_t rv;

    if (++ticks >= PC_MONITOR_TICKS) {
        ticks = 0;
        ap_run_monitor(pc_pconf, ap_server_conf);
    }
    rv = apr_proc_wait_all_procs(ret, status, why, APR_NOWAIT, pc_pconf);
    ap_update_global_status();
    if (APR_STATUS_IS_CHILD_DONE(rv)) {
        return;
    }
    apr_sleep(PC_WAIT_TICK);
    ret->pid = -1;
}

static void server_main_loop(server_rec *s)
{
    apr_exit_why_e why;
    int status;
    apr_proc_t pid;

    while (!pc_retained->mpm->restart_pending
           && !pc_retained->mpm->shutdown_pending) {
        wait_or_timeout(&why, &status, &pid);
        if (pid.pid != -1) {
            reap_one(&pid, why, status);
            if (pc_retained->mpm->restart_pending
                || pc_retained->mpm->shutdown_pending) {
                break;
            }
        }
        fill_slots(s);
        pc_slots_publish();
        pc_stall_check();
        pc_orphan_check();
    }
}

/* httpd's reclaim found its children by the scoreboard, which any child
 * can write: whatever child of the parent's own record is left (its pid
 * hidden there by a tenant) is stopped now. */
static void reclaim_leftovers(void)
{
    int i;

    for (i = 0; i < pc_retained->max_daemons_limit; i++) {
        pid_t pid = pc_slots_pid(i);

        if (pid <= 0) {
            continue;
        }
        if (waitpid(pid, NULL, WNOHANG) == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                         "PC0215: child %" APR_PID_T_FMT " (slot %d) was "
                         "still running after the others stopped (its "
                         "scoreboard entry was overwritten); killing it",
                         pid, i);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        note_slot_child_killed(i);
    }
}

static void stop_ungraceful(void)
{
    pc_pods_signal(AP_MPM_PODX_RESTART);
    pc_slots_publish();
    ap_reclaim_child_processes(1, note_child_killed);
    reclaim_leftovers();
}

/* Reaps, from the parent's own record, children httpd's scoreboard-led
 * relieve did not (see reclaim_leftovers); says whether any still runs. */
static int any_child_alive(void)
{
    int i, alive = 0;

    for (i = 0; i < pc_retained->max_daemons_limit; i++) {
        pid_t pid = pc_slots_pid(i);

        if (pid <= 0) {
            continue;
        }
        if (waitpid(pid, NULL, WNOHANG) == 0) {
            alive = 1;
        }
        else {
            note_slot_child_killed(i);
        }
    }
    return alive;
}

/* graceful-stop: stop accepting, let in-flight requests finish (up to
 * GracefulShutdownTimeout), then make sure nothing is left. */
static void stop_graceful(void)
{
    apr_time_t cutoff = 0;

    /* No connection may wait in an accept queue nobody will serve. */
    ap_close_listeners();
    pc_pools_close_buckets();
    pc_pods_signal(AP_MPM_PODX_GRACEFUL);
    pc_slots_publish();
    ap_relieve_child_processes(note_child_killed);
    if (ap_graceful_shutdown_timeout) {
        cutoff = apr_time_now()
                 + apr_time_from_sec(ap_graceful_shutdown_timeout);
    }
    pc_retained->mpm->shutdown_pending = 0;
    while (!pc_retained->mpm->shutdown_pending && any_child_alive()
           && (!cutoff || apr_time_now() < cutoff)) {
        apr_sleep(apr_time_from_msec(200));
        pc_slots_publish();
        ap_relieve_child_processes(note_child_killed);
    }
    stop_ungraceful();
}

static void log_started(apr_pool_t *plog, server_rec *s)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                 "PC0207: %s configured -- resuming normal operations",
                 ap_get_server_description());
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                 "PC0208: Server built: %s", ap_get_server_built());
    ap_log_command_line(plog, s);
    ap_log_mpm_common(s);
    pc_pools_log_listeners(plog);
    pc_pools_log_implicit(plog);
    pc_affinity_warn(s);
    if (ap_coredumpdir_configured) {
        /* pc_child.c keeps them so: see stay_untraceable there. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "PC0214: CoreDumpDirectory: children are not made "
                     "dumpable by their users, or their tenants' scripts "
                     "could trace them; for core dumps set the sysctl "
                     "fs.suid_dumpable=2 (cores then belong to root)");
    }
}

int pc_parent_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s)
{
    ap_unixd_mpm_retained_data *mpm = pc_retained->mpm;

    ap_log_pid(pconf, ap_pid_fname);
    if (!mpm->was_graceful) {
        if (ap_run_pre_mpm(s->process->pool, SB_SHARED) != OK) {
            mpm->mpm_state = AP_MPMQ_STOPPING;
            return !OK;
        }
        ap_scoreboard_image->global->running_generation = mpm->my_generation;
    }
    ap_unixd_mpm_set_signals(pconf, pc_one_process);
    ensure_pool_state();
    lost_init();
    pc_orphan_init();

    log_started(plog, s);
    mpm->mpm_state = AP_MPMQ_RUNNING;
    fill_slots(s);
    pc_pods_retire_rest();
    server_main_loop(s);
    mpm->mpm_state = AP_MPMQ_STOPPING;

    if (mpm->shutdown_pending && mpm->is_ungraceful) {
        stop_ungraceful();
        ap_remove_pid(pconf, ap_pid_fname);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "PC0209: caught SIGTERM, shutting down");
        return DONE;
    }
    if (mpm->shutdown_pending) {
        int i;

        /* No connection may wait in a channel nobody will take it
         * from: a request on a kept-alive connection for another pool
         * gets 503 from the child that has it (the owner's idle workers
         * are leaving).  Then, as worker, the pid file goes, so that a
         * new server can start while this one's children finish. */
        for (i = 0; i < pc_conf->pools->nelts; i++) {
            set_pool_down(i, 1);
        }
        ap_remove_pid(pconf, ap_pid_fname);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "PC0210: caught " AP_SIG_GRACEFUL_STOP_STRING
                     ", shutting down gracefully");
        stop_graceful();
        return DONE;
    }
    if (pc_one_process) {
        return DONE;
    }

    keep_old_pool_state();
    ++mpm->my_generation;
    ap_scoreboard_image->global->running_generation = mpm->my_generation;
    if (!mpm->is_ungraceful) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "PC0211: " AP_SIG_GRACEFUL_STRING " received.  Doing "
                     "graceful restart");
        /* Not told to stop yet: they serve while the configuration is
         * read again (pc_pods.c). */
        pc_pods_keep_for_successors();
    }
    else {
        stop_ungraceful();
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "PC0212: SIGHUP received.  Attempting to restart");
    }
    return OK;
}

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

/* pc_child.c: one child of a pool.
 *
 * Right after fork the child closes every listener its pool does not
 * accept, then becomes its pool's user for good (setgid, setgroups,
 * setuid, each checked, then verified).  It runs ThreadsPerChild worker
 * threads and no listener thread: an idle worker waits, in an epoll set
 * of its own, for the listeners its pool accepts and for its pool's
 * hand-off channel, and takes the job itself, so a new or passed
 * connection costs one thread wake-up.  The socket table has one entry
 * per worker, written by that worker:
 *
 *   PC_SOCK_IDLE   (-1)  nothing to do;
 *   PC_SOCK_PASSED (-2)  a connection passed by another pool's child:
 *                        descriptor and bytes sit in the entry until the
 *                        new connection adopts them;
 *   fd >= 0              a connection this child accepted.
 *
 * The main thread waits for the parent's pipe of death and for this
 * child's own reasons to stop (MaxConnectionsPerChild, SIGTERM).
 */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_park.h"
#include "pc_pods.h"
#include "pc_affinity.h"
#include "mpm_default.h"
#include "http_log.h"
#include "http_main.h"
#include "http_connection.h"
#include "http_core.h"
#include "apr_strings.h"
#include "apr_signal.h"
#include "apr_atomic.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

APLOG_USE_MODULE(mpm_perchild);

typedef struct pc_tslot_t {
    int sock;                /* PC_SOCK_IDLE, PC_SOCK_PASSED or an fd */
    pc_passed_t passed;      /* valid while sock == PC_SOCK_PASSED */
    char *buf;               /* receives passed bytes; malloc'ed on first
                              * use, untouched pages cost nothing */
    volatile int busy_fd;    /* fd being served, for an ungraceful stop */
    int owned;               /* accepted on a listener of this pool only:
                              * no request on it can be another pool's */
    int bucket;              /* the listener bucket it was accepted on */
    apr_socket_t *accepted;  /* the connection accepted, in 'ptrans' */
    apr_pool_t *ptrans;      /* the worker's connection pool */
    int epfd;                /* what this worker waits on when idle */
    volatile int in_take;    /* in take_job (stop_threads waits) */
    int woken;               /* left epoll_wait in this take_job */
    int last_src;            /* the source it was woken for, or -1 */
} pc_tslot_t;

/* Something an idle worker waits on: a listener or the channel. */
typedef struct pc_source_t {
    int fd;
    apr_socket_t *lsock;     /* a listener's APR socket */
    int is_channel;
    int is_park;             /* parked connections with a request */
    int owned;               /* a listener of this pool only */
    int bucket;              /* a listener's bucket */
    apr_uint32_t dropped;    /* a channel found shut down */
} pc_source_t;

static struct {
    int slot;
    int pool;
    apr_pool_t *pchild;
    pc_tslot_t *table;           /* the socket table */
    pc_source_t *sources;
    int nsources;
    volatile int may_exit;       /* stop taking jobs */
    int graceful;                /* and finish what was taken */
    int listeners_closed;        /* by stop_threads */
    pthread_rwlock_t listeners_lock;  /* closing vs accepting */
    int stopfd;                  /* eventfd: wakes every idle worker */
    int ctl[2];                  /* self-pipe: reasons to stop */
    pid_t pid;                   /* this child (not a fork of it) */
    pid_t parent;                /* the parent that forked it */
    ap_generation_t generation;  /* the generation it belongs to */
    apr_uint32_t conns_left;     /* MaxConnectionsPerChild countdown */
    int limit_conns;
    ap_pod_t *pod;
} child;


static void clean_child_exit(int code) __attribute__((noreturn));
static void clean_child_exit(int code)
{
    pc_retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    if (child.pchild != NULL) {
        apr_pool_destroy(child.pchild);
    }
    exit(code);
}

/* Async-signal-safe: the main thread reads the reason from the pipe.
 * A process forked from this child (mod_cgi's, before its exec) runs
 * this handler too, and still holds the pipe: its SIGTERM (mod_cgi's
 * cleanup kills a script whose request ended early) must end that
 * process alone, not tell the child to stop. */
static void ctl_signal(int sig)
{
    char c = (sig == SIGTERM) ? 'u' : 'g';
    int saved = errno;

    if (getpid() != child.pid) {
        signal(sig, SIG_DFL);
        raise(sig);
        errno = saved;
        return;
    }
    if (write(child.ctl[1], &c, 1) == -1) {
        /* Pipe full: a reason is already pending. */
    }
    errno = saved;
}

static void ctl_request(char reason)
{
    if (write(child.ctl[1], &reason, 1) == -1) {
        /* Pipe full: a reason is already pending. */
    }
}

static int make_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

/* Does this child accept 'pl': its pool does, and it is in one of the
 * child's buckets. */
static int child_accepts(const pc_listener_t *pl)
{
    return pc_pools_accepts(child.pool, pl)
           && pc_pools_takes_bucket(child.pool, child.slot, pl->bucket);
}

/* Closes every listener this child's pool does not accept, so that no
 * descriptor of another pool's traffic stays in a tenant's process. */
static void close_unowned_listeners(void)
{
    int i;

    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                           pc_listener_t);
        /* sd stays set: httpd's exec cleanup closes every listener
         * again, and a closed apr socket tolerates that. */
        if (!child_accepts(pl)) {
            apr_socket_close(pl->lr->sd);
            pl->lr->active = 0;
        }
    }
}

static int conns_exhausted(void)
{
    return child.limit_conns && apr_atomic_read32(&child.conns_left) == 0;
}

/* Closes this child's copies of the listeners it accepted. */
static void close_listeners(void)
{
    int i;

    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                           pc_listener_t);
        apr_socket_close(pl->lr->sd);
    }
}

/* Becomes the pool's user, or fails.  Each step is checked and the end
 * result verified: a child must never serve as root by accident. */
static apr_status_t drop_privileges(const pc_pool_t *pl)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (ap_unixd_config.chroot_dir != NULL) {
        if (chdir(ap_unixd_config.chroot_dir) == -1
            || chroot(ap_unixd_config.chroot_dir) == -1
            || chdir("/") == -1) {
            return errno;
        }
        /* Done here: mod_unixd must not try again as non-root. */
        ap_unixd_config.chroot_dir = NULL;
    }
    if (setgid(pl->gid) == -1) {
        return errno;
    }
    /* The groups initgroups() would set, resolved by the parent. */
    if (setgroups(pl->ngroups, pl->groups) == -1) {
        return errno;
    }
    if (setuid(pl->uid) == -1) {
        return errno;
    }
    if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1) {
        return errno;
    }
    if (ru != pl->uid || eu != pl->uid || su != pl->uid
        || rg != pl->gid || eg != pl->gid || sg != pl->gid) {
        return APR_EGENERAL;
    }
    /* The way back to root must be closed. */
    if (setuid(0) != -1 || setgid(0) != -1) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Makes the pool's identity the one that other modules see (suexec,
 * mod_unixd's own drop hook, anything that asks ap_unixd_config). */
static void publish_identity(const pc_pool_t *pl)
{
    ap_unixd_config.user_id = pl->uid;
    ap_unixd_config.group_id = pl->gid;
    ap_unixd_config.user_name = pl->user_name;
    ap_unixd_config.group_name = pl->group_name;
}

/* Wakes every idle worker: they find child.may_exit set and leave. */
static void wake_all_workers(void)
{
    uint64_t one = 1;

    if (write(child.stopfd, &one, sizeof(one)) == -1) {
        /* The counter cannot overflow from a handful of writes. */
    }
}

/* accept(2) errors that say "try again" rather than "this listener is
 * broken", following unixd's accept. */
static int accept_error_is_transient(int err)
{
    switch (err) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENONET:
    case ENETUNREACH:
    case ETIMEDOUT:
    case ECONNRESET:
        return 1;
    }
    return 0;
}

/* Accepts one connection on a readable listener into the worker's own
 * entry.  Returns the descriptor, or -1 when another thread or child
 * was quicker (or the child is stopping). */
static int take_accepted(pc_tslot_t *ts, const pc_source_t *src)
{
    apr_status_t err = APR_EAGAIN;      /* stopping: as if none came */
    apr_os_sock_t fd = -1;

    /* The lock keeps stop_threads from closing the listener between our
     * look and the accept.  APR's accept, as worker's: it
     * knows the peer, the local address of a listener bound to one, and
     * the inherited TCP_NODELAY, where a wrapped descriptor would cost
     * three more system calls per connection. */
    pthread_rwlock_rdlock(&child.listeners_lock);
    if (!child.listeners_closed) {
        err = apr_socket_accept(&ts->accepted, src->lsock, ts->ptrans);
    }
    pthread_rwlock_unlock(&child.listeners_lock);
    if (err == APR_SUCCESS) {
        apr_os_sock_get(&fd, ts->accepted);
        ts->owned = src->owned;
        ts->bucket = src->bucket;
        return fd;
    }
    if (err == EMFILE || err == ENFILE) {
        ap_log_error(APLOG_MARK, APLOG_ERR, err, ap_server_conf,
                     "PC0401: accept: out of descriptors; pausing");
        apr_sleep(apr_time_from_msec(100));
    }
    else if (err != 0 && !accept_error_is_transient(err)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, err, ap_server_conf,
                     "PC0402: accept failed");
        apr_sleep(apr_time_from_msec(10));
    }
    return -1;
}

/* Every worker's epoll set loses the channel: it stays at end of file
 * once shut down and would wake them all, forever. */
static void drop_channel(int chan)
{
    int i;
    /* The last sending end also closes when the whole server goes away
     * (a restart whose configuration fails exits the parent, then every
     * child): nothing to tell then. */
    int ending = child.may_exit || getppid() != child.parent
                 || ap_scoreboard_image->global->running_generation
                    != child.generation;

    ap_log_error(APLOG_MARK, ending ? APLOG_DEBUG : APLOG_ERR, EPIPE,
                 ap_server_conf,
                 "PC0409: this pool's hand-off channel was shut down; "
                 "connections passed from other pools get 503 until the "
                 "next restart (a graceful one will do)");
    for (i = 0; i < pc_conf->threads_per_child; i++) {
        epoll_ctl(child.table[i].epfd, EPOLL_CTL_DEL, chan, NULL);
    }
}

/* The worker's buffer for passed bytes, allocated on first use. */
static int have_buf(pc_tslot_t *ts)
{
    if (ts->buf == NULL
        && (ts->buf = malloc(pc_handoff_bufsize())) == NULL) {
        apr_sleep(apr_time_from_msec(10));
        return 0;
    }
    return 1;
}

/* Takes one passed connection off the pool's channel into the worker's
 * own entry.  Returns 1 if there was one. */
static int take_passed(pc_tslot_t *ts, pc_source_t *src)
{
    apr_status_t rv;

    if (!have_buf(ts)) {
        return 0;
    }
    rv = pc_handoff_receive(src->fd, ts->buf, &ts->passed);
    if (rv == APR_SUCCESS) {
        /* A sign of life for the parent's stall watch (pc_stall.c),
         * also when the worker parks the connection rather than serve
         * it: records taken so far (our MPM is not async, so mod_status
         * does not show this field). */
        apr_atomic_inc32(&ap_get_scoreboard_process(child.slot)
                          ->connections);
        return 1;
    }
    if (rv == EPIPE && apr_atomic_cas32(&src->dropped, 1, 0) == 0) {
        drop_channel(src->fd);
    }
    return 0;
}

/* A worker on its way out takes one more job if one is there.  Listeners
 * and channels wake one waiting worker of one child per event
 * (EPOLLEXCLUSIVE): a worker woken just as its child stops would leave
 * the event unserved, and with it a client, until the next event came
 * -- for good on a quiet site.  Its child has taken its sources out of
 * every worker's set by then (stop_threads), so no later event is lost
 * here, and this one try covers the one it may have eaten: only a
 * worker that was waiting can have, and first at the source it was
 * woken for.  A worker busy until after the stop takes nothing more. */
static int take_from(pc_tslot_t *ts, pc_source_t *src)
{
    int fd;

    if (src->is_park) {
        return PC_SOCK_IDLE;
    }
    if (src->is_channel) {
        if (!src->dropped && take_passed(ts, src)) {
            ts->sock = PC_SOCK_PASSED;
            return ts->sock;
        }
        return PC_SOCK_IDLE;
    }
    if ((fd = take_accepted(ts, src)) >= 0) {
        ts->sock = fd;
        return fd;
    }
    return PC_SOCK_IDLE;
}

static int take_last_job(pc_tslot_t *ts)
{
    int i, job = PC_SOCK_IDLE;

    if (!ts->woken || !child.may_exit || !child.graceful) {
        return PC_SOCK_IDLE;
    }
    if (ts->last_src >= 0) {
        job = take_from(ts, &child.sources[ts->last_src]);
    }
    for (i = 0; job == PC_SOCK_IDLE && i < child.nsources; i++) {
        job = take_from(ts, &child.sources[i]);
    }
    return job;
}

static int wait_for_job(pc_tslot_t *ts)
{
    struct epoll_event ev;

    ts->woken = 0;
    ts->last_src = -1;
    while (!child.may_exit && !conns_exhausted()) {
        pc_source_t *src;
        int n, fd;

        pc_park_idle(1);
        n = epoll_wait(ts->epfd, &ev, 1, -1);
        pc_park_idle(0);
        ts->woken = 1;
        ts->last_src = (n == 1 && ev.data.u32 < (uint32_t)child.nsources)
                       ? (int)ev.data.u32 : -1;

        if (n != 1) {
            if (n == -1 && errno != EINTR) {
                ap_log_error(APLOG_MARK, APLOG_ERR, errno, ap_server_conf,
                             "PC0403: epoll_wait failed");
                apr_sleep(apr_time_from_msec(10));
            }
            continue;
        }
        if (ev.data.u32 >= (uint32_t)child.nsources) {
            continue;            /* the stop event: the loop checks */
        }
        src = &child.sources[ev.data.u32];
        if (src->is_park) {
            if (have_buf(ts) && pc_park_take(&ts->passed, ts->buf)) {
                ts->sock = PC_SOCK_PASSED;
                return ts->sock;
            }
        }
        else if (src->is_channel) {
            /* Given back between two requests: maybe it can wait for
             * the next one without this worker. */
            if (take_passed(ts, src) && !pc_park_offer(&ts->passed)) {
                pc_park_nudge();
                ts->sock = PC_SOCK_PASSED;
                return ts->sock;
            }
        }
        else if ((fd = take_accepted(ts, src)) >= 0) {
            pc_park_nudge();
            ts->sock = fd;
            return fd;
        }
    }
    return PC_SOCK_IDLE;
}

/* Waits for a job and takes it: the worker's entry becomes
 * PC_SOCK_PASSED (the passed connection in it) or the descriptor it
 * accepted.  PC_SOCK_IDLE: the worker should exit. */
static int take_job(pc_tslot_t *ts)
{
    int job;

    /* The worker's own entry, not a shared counter: nothing for the
     * workers to contend on, per request. */
    ts->in_take = 1;
    job = wait_for_job(ts);
    if (job == PC_SOCK_IDLE) {
        job = take_last_job(ts);
    }
    ts->in_take = 0;
    return job;
}

static void add_source(int fd, int is_channel, int owned, int bucket)
{
    pc_source_t *src = &child.sources[child.nsources++];

    src->fd = fd;
    src->is_channel = is_channel;
    src->is_park = 0;
    src->owned = owned;
    src->bucket = bucket;
}

/* What this child's workers wait on: the listeners its pool accepts,
 * the pool's hand-off channel and (parkfd >= 0) parked connections whose
 * next request has come. */
static void collect_sources(int parkfd)
{
    int i, nchan = pc_handoff_channel_fds(child.pool, NULL);
    int *chans = apr_palloc(child.pchild, (nchan + 1) * sizeof(int));

    child.sources = apr_pcalloc(child.pchild, (pc_conf->listeners->nelts
                                               + nchan + 1)
                                              * sizeof(pc_source_t));
    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                           pc_listener_t);
        apr_os_sock_t fd;

        if (!child_accepts(pl)
            || apr_os_sock_get(&fd, pl->lr->sd) != APR_SUCCESS || fd < 0) {
            continue;
        }
        /* Many threads and children wait on the same listener: never
         * block in accept. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        add_source(fd, 0, pl->owner == child.pool, pl->bucket);
        child.sources[child.nsources - 1].lsock = pl->lr->sd;
    }
    /* The pool's channel (with PerchildCPUAffinity: this child's way's,
     * and ways a graceful restart retired that map onto it). */
    nchan = pc_handoff_channel_fds(child.pool, chans);
    for (i = 0; i < nchan; i++) {
        add_source(chans[i], 1, 0, 0);
    }
    if (parkfd >= 0) {
        add_source(parkfd, 0, 0, 0);
        child.sources[child.nsources - 1].is_park = 1;
    }
}

/* Each worker waits in an epoll set of its own, where listeners and
 * channel are EPOLLEXCLUSIVE: a new connection or a passed one wakes one
 * idle worker of one child, not every idle thread of every child, and
 * no thread stands between the event and the worker that serves it. */
static apr_status_t make_worker_epoll(pc_tslot_t *ts)
{
    struct epoll_event ev;
    int i;

    if ((ts->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
        return errno;
    }
    for (i = 0; i < child.nsources; i++) {
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ts->epfd, EPOLL_CTL_ADD, child.sources[i].fd, &ev)
            == -1) {
            return errno;
        }
    }
    /* Not exclusive: stopping wakes everyone. */
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = UINT32_MAX;
    if (epoll_ctl(ts->epfd, EPOLL_CTL_ADD, child.stopfd, &ev) == -1) {
        return errno;
    }
    return APR_SUCCESS;
}

/* Serves one connection on worker thread 'tn': one accepted into
 * ts->accepted, or one passed from another pool ('passed'). */
static void serve_connection(apr_pool_t *ptrans, int tn, pc_tslot_t *ts,
                             int fd, pc_passed_t *passed)
{
    apr_socket_t *sock = ts->accepted;
    apr_bucket_alloc_t *ba;
    ap_sb_handle_t *sbh;
    conn_rec *c;
    long conn_id = (long)child.slot * pc_conf->thread_limit + tn;

    ts->accepted = NULL;
    if (passed != NULL
        && pc_handoff_wrap(&sock, passed, ptrans) != APR_SUCCESS) {
        return;
    }
    ts->busy_fd = fd;
    ba = apr_bucket_alloc_create(ptrans);
    ap_create_sb_handle(&sbh, ptrans, child.slot, tn);
    c = ap_run_create_connection(ptrans, ap_server_conf, sock, conn_id, sbh,
                                 ba);
    if (c != NULL) {
        if (passed != NULL) {
            pc_handoff_adopt(c, passed);
        }
        else if (ts->owned) {
            pc_handoff_own_listener(c);
        }
        else {
            pc_handoff_accepted(c, ts->bucket);
        }
        ap_process_connection(c, sock);
        /* A connection for another pool leaves here, as late as can be:
         * the owner's worker wakes as this one goes idle. */
        pc_handoff_finish(c);
        ap_lingering_close(c);
    }
    ts->busy_fd = -1;
}

static void *APR_THREAD_FUNC worker_thread(apr_thread_t *thd, void *arg)
{
    int tn = (int)(apr_uintptr_t)arg;
    pc_tslot_t *ts = &child.table[tn];
    apr_allocator_t *allocator;
    apr_pool_t *ptrans;

    apr_allocator_create(&allocator);
    apr_allocator_max_free_set(allocator, ap_max_mem_free);
    apr_pool_create_ex(&ptrans, child.pchild, NULL, allocator);
    apr_allocator_owner_set(allocator, ptrans);
    apr_pool_tag(ptrans, "transaction");
    ts->ptrans = ptrans;

    ap_update_child_status_from_indexes(child.slot, tn, SERVER_READY, NULL);
    for (;;) {
        int sock = take_job(ts);

        if (sock == PC_SOCK_IDLE) {
            break;
        }
        if (sock == PC_SOCK_PASSED) {
            serve_connection(ptrans, tn, ts, ts->passed.fd, &ts->passed);
        }
        else {
            serve_connection(ptrans, tn, ts, sock, NULL);
        }
        ts->sock = PC_SOCK_IDLE;
        apr_pool_clear(ptrans);
        if (child.limit_conns && apr_atomic_dec32(&child.conns_left) == 0) {
            ctl_request('g');
        }
        ap_update_child_status_from_indexes(child.slot, tn, SERVER_READY,
                                            NULL);
    }
    ap_update_child_status_from_indexes(child.slot, tn,
                                        child.may_exit ?
                                        SERVER_GRACEFUL : SERVER_DEAD, NULL);
    apr_pool_destroy(ptrans);
    return NULL;
}

static apr_status_t init_table(int n)
{
    apr_status_t rv;
    int i;

    pthread_rwlock_init(&child.listeners_lock, NULL);
    child.table = apr_pcalloc(child.pchild, n * sizeof(*child.table));
    collect_sources(pc_park_init(child.pchild, child.slot, n));
    for (i = 0; i < n; i++) {
        child.table[i].sock = PC_SOCK_IDLE;
        child.table[i].busy_fd = -1;
        if ((rv = make_worker_epoll(&child.table[i])) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_thread_t **start_threads(void)
{
    int n = pc_conf->threads_per_child, i;
    apr_thread_t **threads = apr_pcalloc(child.pchild, n * sizeof(*threads));
    apr_threadattr_t *attr;
    apr_status_t rv;

    apr_threadattr_create(&attr, child.pchild);
    apr_threadattr_detach_set(attr, 0);
    apr_threadattr_stacksize_set(attr, ap_thread_stacksize
                                       ? ap_thread_stacksize
                                       : DEFAULT_THREAD_STACK_SIZE);
    for (i = 0; i < n; i++) {
        ap_update_child_status_from_indexes(child.slot, i, SERVER_STARTING,
                                            NULL);
        rv = ap_thread_create(&threads[i], attr, worker_thread,
                              (void *)(apr_uintptr_t)i, child.pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ALERT, rv, ap_server_conf,
                         "PC0404: cannot create worker thread %d", i);
            clean_child_exit(APEXIT_CHILDSICK);
        }
    }
    return threads;
}

/* Blocks until the parent or this child decides it is time to stop.
 * Returns 1 for a graceful stop, 0 for an immediate one. */
static int wait_for_stop(void)
{
    apr_os_file_t podfd = -1;
    struct pollfd pfd[2];

    if (child.pod != NULL) {
        /* The pool's children poll its pipe; one reads each byte. */
        apr_os_file_get(&podfd, child.pod->pod_in);
        fcntl(podfd, F_SETFL, fcntl(podfd, F_GETFL) | O_NONBLOCK);
    }
    for (;;) {
        char c;

        pfd[0].fd = child.ctl[0];
        pfd[0].events = POLLIN;
        pfd[1].fd = podfd;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        if (poll(pfd, podfd >= 0 ? 2 : 1, -1) == -1) {
            continue;
        }
        if ((pfd[0].revents & POLLIN) && read(child.ctl[0], &c, 1) == 1) {
            return c == 'g';
        }
        if (pfd[1].revents & POLLIN) {
            int rv = ap_mpm_podx_check(child.pod);
            if (rv == AP_MPM_PODX_GRACEFUL || rv == AP_MPM_PODX_RESTART) {
                return rv == AP_MPM_PODX_GRACEFUL;
            }
        }
        else if (pfd[1].revents & (POLLHUP | POLLERR)) {
            /* Only the parent writes the pipe: it has ended this
             * generation (its bytes are all read) or it is gone. */
            return 1;
        }
    }
}

/* No more events for this child's workers: from now on every new
 * connection and record wakes a worker of a child that goes on. */
static void unwatch_sources(void)
{
    int i, j;

    for (i = 0; i < pc_conf->threads_per_child; i++) {
        for (j = 0; j < child.nsources; j++) {
            if (!child.sources[j].is_park) {
                epoll_ctl(child.table[i].epfd, EPOLL_CTL_DEL,
                          child.sources[j].fd, NULL);
            }
        }
    }
}

static int workers_in_take(void)
{
    int i, n = 0;

    for (i = 0; i < pc_conf->threads_per_child; i++) {
        n += child.table[i].in_take;
    }
    return n;
}

/* Lets the idle workers take their last job (take_last_job) before the
 * listeners close; not long: busy workers are not waited for. */
static void wait_idle_workers_out(void)
{
    int i;

    for (i = 0; i < 200 && workers_in_take() > 0; i++) {
        apr_sleep(apr_time_from_msec(1));
    }
}

/* Stops taking jobs: idle workers leave at once, and the listeners are
 * closed so that other children (or the next generation) take the new
 * connections.  Busy workers finish their connection (graceful) or have
 * it shut down under them. */
static void stop_threads(int graceful, apr_thread_t **threads)
{
    int i;
    apr_status_t rv;

    pc_retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    pthread_rwlock_wrlock(&child.listeners_lock);
    child.graceful = graceful;
    child.may_exit = 1;
    unwatch_sources();
    pthread_rwlock_unlock(&child.listeners_lock);
    wake_all_workers();
    wait_idle_workers_out();
    pthread_rwlock_wrlock(&child.listeners_lock);
    close_listeners();
    child.listeners_closed = 1;
    pthread_rwlock_unlock(&child.listeners_lock);
    /* Idle keep-alive connections close at a stop, as under worker. */
    pc_park_stop();
    /* Modules with idle connections of their own (mod_http2's sessions)
     * end them now, as under worker, not at their keep-alive timeout. */
    ap_run_child_stopping(child.pchild, graceful);

    for (i = 0; !graceful && i < pc_conf->threads_per_child; i++) {
        int fd = child.table[i].busy_fd;
        if (fd >= 0) {
            /* Ends blocked reads and writes; the worker closes. */
            shutdown(fd, SHUT_RDWR);
        }
    }
    for (i = 0; i < pc_conf->threads_per_child; i++) {
        apr_thread_join(&rv, threads[i]);
    }
}

static void setup_signals(void)
{
    sigset_t set;

    /* Worker threads inherit a mask with everything blocked, so that
     * SIGTERM reaches the main thread, which turns it into a message. */
    apr_setup_signal_thread();
    child.pid = getpid();
    child.parent = getppid();
    child.generation = pc_retained->mpm->my_generation;
    apr_signal(SIGTERM, ctl_signal);
    apr_signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* A child runs as its tenant, and so do the tenant's CGI scripts: were
 * it dumpable by its user, a script could trace it (ptrace,
 * /proc/<pid>/mem, pidfd_getfd) and take its client sockets, listeners
 * and channel ends.  The change of user left it as the sysctl
 * fs.suid_dumpable says: not dumpable (0), or dumpable by root only (2,
 * which still gives core dumps).  mod_unixd would make it dumpable by
 * its user for CoreDumpDirectory: it is told there is none before its
 * hook runs, and whatever another hook did is undone after (pc_parent.c
 * says so at start). */
static void keep_dumpable_by_root_only(void)
{
    if (!pc_one_process) {
        ap_coredumpdir_configured = 0;
    }
}

static void stay_untraceable(void)
{
    if (!pc_one_process && prctl(PR_GET_DUMPABLE) == 1
        && prctl(PR_SET_DUMPABLE, 0) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, ap_server_conf,
                     "PC0411: cannot make the child non-dumpable; exiting");
        clean_child_exit(APEXIT_CHILDFATAL);
    }
}

static void init_child(int slot, int pool)
{
    pc_pool_t *pl = pc_pools_get(pool);
    apr_status_t rv;

    child.slot = slot;
    child.pool = pool;
    pc_my_pool = pool;
    pc_retained->mpm->mpm_state = AP_MPMQ_STARTING;
    ap_fatal_signal_child_setup(ap_server_conf);
    apr_pool_create(&child.pchild, pc_pconf);
    apr_pool_tag(child.pchild, "pchild");
#if AP_HAS_THREAD_LOCAL
    if (!pc_one_process) {
        apr_thread_t *thd = NULL;
        ap_thread_current_after_fork();
        if ((rv = ap_thread_main_create(&thd, child.pchild))) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, ap_server_conf,
                         "PC0406: cannot initialise the main thread");
            clean_child_exit(APEXIT_CHILDFATAL);
        }
    }
#endif
    close_unowned_listeners();
    /* Only the reading end of this pool's pipe of death: a writing end
     * would let a tenant stop any child of its pool at will, another
     * pool's pipe would let it stop theirs. */
    child.pod = pc_pods_child_keep(pool);
    pc_handoff_child_init(pool, pc_one_process ? 0
                                : pc_affinity_pin_child(pl, slot));
    pc_logs_child_init(pool);
    pc_progs_child_init(pool);
    ap_reopen_scoreboard(child.pchild, NULL, 0);

    if (!pc_one_process) {
        if ((rv = pc_parent_child_init()) != 0) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, ap_server_conf,
                         "PC0410: cannot map the pool state read-only");
            clean_child_exit(APEXIT_CHILDFATAL);
        }
        rv = drop_privileges(pl);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, ap_server_conf,
                         "PC0407: child of pool %s cannot become uid %ld "
                         "gid %ld; exiting", pl->label, (long)pl->uid,
                         (long)pl->gid);
            clean_child_exit(APEXIT_CHILDFATAL);
        }
        publish_identity(pl);
    }
    /* Other modules' drop hooks (mod_unixd does nothing once not root). */
    keep_dumpable_by_root_only();
    if (ap_run_drop_privileges(child.pchild, ap_server_conf)) {
        clean_child_exit(APEXIT_CHILDFATAL);
    }
    stay_untraceable();
    child.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (make_pipe(child.ctl) == -1 || child.stopfd == -1) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, ap_server_conf,
                     "PC0408: cannot create the child's control pipes");
        clean_child_exit(APEXIT_CHILDSICK);
    }
}

int pc_child_leaving(void)
{
    return child.may_exit;
}

int pc_child_superseded(void)
{
    return ap_scoreboard_image->global->running_generation
           != child.generation;
}

void pc_child_main(int slot, int pool)
{
    apr_thread_t **threads;
    apr_status_t rv;
    int graceful;

    init_child(slot, pool);
    setup_signals();
    ap_run_child_init(child.pchild, ap_server_conf);

    child.limit_conns = ap_max_requests_per_child > 0;
    apr_atomic_set32(&child.conns_left, (apr_uint32_t)
                     (child.limit_conns ? ap_max_requests_per_child : 0));
    if ((rv = init_table(pc_conf->threads_per_child)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, ap_server_conf,
                     "PC0405: cannot set up the workers' epoll sets");
        clean_child_exit(APEXIT_CHILDSICK);
    }
    threads = start_threads();
    pc_retained->mpm->mpm_state = AP_MPMQ_RUNNING;

    graceful = wait_for_stop();
    stop_threads(graceful, threads);
    clean_child_exit(0);
}

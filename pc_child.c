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
 * setuid, each checked, then verified).  It runs one listener thread and
 * ThreadsPerChild worker threads.  The listener hands work to an idle
 * worker through the socket table, one entry per worker thread:
 *
 *   PC_SOCK_IDLE   (-1)  nothing to do;
 *   PC_SOCK_PASSED (-2)  a connection passed by another pool's child is
 *                        pending: descriptor and bytes sit in the entry;
 *   fd >= 0              a connection this child accepted.
 *
 * The main thread waits for the parent's pipe of death and for this
 * child's own reasons to stop (MaxConnectionsPerChild, SIGTERM).
 */

#include "perchild.h"
#include "pc_handoff.h"
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

APLOG_USE_MODULE(mpm_perchild);

typedef struct pc_tslot_t {
    int sock;                /* PC_SOCK_IDLE, PC_SOCK_PASSED or an fd */
    pc_passed_t passed;      /* valid while sock == PC_SOCK_PASSED */
    char *buf;               /* receives passed bytes; malloc'ed on first
                              * use, untouched pages cost nothing */
    int busy_fd;             /* fd being served, for an ungraceful stop */
    int owned;               /* accepted on a listener of this pool only:
                              * no request on it can be another pool's */
    struct sockaddr_storage peer;   /* the client, from accept4() */
    pthread_cond_t cv;
} pc_tslot_t;

static struct {
    int slot;
    int pool;
    apr_pool_t *pchild;
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;      /* a worker became idle */
    pc_tslot_t *table;           /* the socket table */
    int *idle;                   /* stack of idle worker indexes */
    int idle_count;
    int listener_may_exit;
    int workers_may_exit;
    int ctl[2];                  /* self-pipe: reasons to stop */
    int lwake[2];                /* wakes the listener's poll */
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

/* Async-signal-safe: the main thread reads the reason from the pipe. */
static void ctl_signal(int sig)
{
    char c = (sig == SIGTERM) ? 'u' : 'g';
    int saved = errno;

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

static void wake_listener(void)
{
    char c = 'w';

    if (write(child.lwake[1], &c, 1) == -1) {
        /* Full: the listener is already being woken. */
    }
}

static int make_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
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
        if (!pc_pools_accepts(child.pool, pl)) {
            apr_socket_close(pl->lr->sd);
            pl->lr->active = 0;
        }
    }
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

/* Hands a job to the idle worker 'w'.  Called with child.mu held. */
static void give_job(int w, int sock, const pc_passed_t *passed,
                     int owned)
{
    pc_tslot_t *ts = &child.table[w];

    ts->sock = sock;
    ts->owned = owned;
    if (passed != NULL) {
        ts->passed = *passed;
    }
    pthread_cond_signal(&ts->cv);
}

/* Waits for an idle worker; returns its index, or -1 when stopping. */
static int wait_for_idler(void)
{
    int w = -1;

    pthread_mutex_lock(&child.mu);
    while (child.idle_count == 0 && !child.listener_may_exit) {
        pthread_cond_wait(&child.idle_cv, &child.mu);
    }
    if (!child.listener_may_exit) {
        w = child.idle[--child.idle_count];
    }
    pthread_mutex_unlock(&child.mu);
    return w;
}

static void return_idler(int w)
{
    pthread_mutex_lock(&child.mu);
    child.idle[child.idle_count++] = w;
    pthread_mutex_unlock(&child.mu);
}

static void dispatch(int w, int sock, const pc_passed_t *passed, int owned)
{
    pthread_mutex_lock(&child.mu);
    give_job(w, sock, passed, owned);
    pthread_mutex_unlock(&child.mu);
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

/* Tries to accept on one readable listener.  Returns 1 if worker 'w'
 * got the connection. */
static int try_accept(int lfd, int w, int owned)
{
    /* The worker is idle and ours: its entry takes the peer's address. */
    socklen_t len = sizeof(child.table[w].peer);
    int fd = accept4(lfd, (struct sockaddr *)&child.table[w].peer, &len,
                     SOCK_CLOEXEC);

    if (fd == -1) {
        int err = errno;
        if (err == EMFILE || err == ENFILE) {
            ap_log_error(APLOG_MARK, APLOG_ERR, err, ap_server_conf,
                         "PC0401: accept: out of descriptors; pausing");
            apr_sleep(apr_time_from_msec(100));
        }
        else if (!accept_error_is_transient(err)) {
            ap_log_error(APLOG_MARK, APLOG_ERR, err, ap_server_conf,
                         "PC0402: accept failed");
            apr_sleep(apr_time_from_msec(10));
        }
        return 0;
    }
    dispatch(w, fd, NULL, owned);
    return 1;
}

/* Builds the listener's poll set: listeners this pool accepts, the
 * pool's hand-off channel, and the wake pipe (last). */
static int build_pollset(struct pollfd *pfd, int *owned, int max)
{
    int i, n = 0, chan;

    for (i = 0; i < pc_conf->listeners->nelts && n < max - 2; i++) {
        pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                           pc_listener_t);
        apr_os_sock_t fd;

        if (!pc_pools_accepts(child.pool, pl)
            || apr_os_sock_get(&fd, pl->lr->sd) != APR_SUCCESS || fd < 0) {
            continue;
        }
        /* Many children poll the same listener: never block in accept. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        pfd[n].fd = fd;
        pfd[n].events = POLLIN;
        owned[n] = (pl->owner == child.pool);
        n++;
    }
    chan = pc_handoff_channel_fd(child.pool);
    if (chan >= 0) {
        pfd[n].fd = chan;
        pfd[n].events = POLLIN;
        owned[n] = 0;
        n++;
    }
    pfd[n].fd = child.lwake[0];
    pfd[n].events = POLLIN;
    return n + 1;
}

static int conns_exhausted(void)
{
    return child.limit_conns && apr_atomic_read32(&child.conns_left) == 0;
}

/* Serves one readable descriptor of the poll set for worker 'w'.
 * Returns 1 if 'w' was given work. */
static int serve_ready(struct pollfd *p, int chan, int w, int owned)
{
    pc_tslot_t *ts = &child.table[w];
    pc_passed_t passed;
    apr_status_t rv;

    if (p->fd == chan) {
        /* The worker is idle and ours: its buffer is free to fill. */
        if (ts->buf == NULL
            && (ts->buf = malloc(pc_handoff_bufsize())) == NULL) {
            return 0;
        }
        rv = pc_handoff_receive(chan, ts->buf, &passed);
        if (rv == APR_SUCCESS) {
            dispatch(w, PC_SOCK_PASSED, &passed, 0);
            return 1;
        }
        if (rv == EPIPE) {
            /* Someone holding a sending end shut the channel down: it
             * stays at end of file.  Stop polling it rather than spin. */
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf,
                         "PC0409: this pool's hand-off channel was shut "
                         "down; connections passed from other pools get "
                         "503 until the next restart");
            p->fd = -1;
        }
        return 0;
    }
    return try_accept(p->fd, w, owned);
}

static void *APR_THREAD_FUNC listener_thread(apr_thread_t *thd, void *arg)
{
    /* Every listener, the channel and the wake pipe. */
    int max = pc_conf->listeners->nelts + 2;
    struct pollfd *pfd = apr_pcalloc(child.pchild, max * sizeof(*pfd));
    int *owned = apr_pcalloc(child.pchild, max * sizeof(int));
    int n = build_pollset(pfd, owned, max);
    int chan = pc_handoff_channel_fd(child.pool);
    int start = 0;

    while (!child.listener_may_exit && !conns_exhausted()) {
        int w = wait_for_idler(), i, given = 0;

        if (w < 0) {
            break;
        }
        while (!given && !child.listener_may_exit) {
            if (poll(pfd, n, -1) == -1) {
                if (errno != EINTR) {
                    ap_log_error(APLOG_MARK, APLOG_ERR, errno,
                                 ap_server_conf, "PC0403: poll failed");
                    apr_sleep(apr_time_from_msec(10));
                }
                continue;
            }
            /* Rotate the start so that no listener starves another. */
            for (i = 0; i < n - 1 && !given; i++) {
                int k = (start + i) % (n - 1);
                if (pfd[k].revents & (POLLIN | POLLERR | POLLHUP)) {
                    given = serve_ready(&pfd[k], chan, w, owned[k]);
                }
            }
            start = (start + 1) % (n > 1 ? n - 1 : 1);
            if (pfd[n - 1].revents) {
                char buf[16];
                while (read(child.lwake[0], buf, sizeof(buf)) > 0) {
                    /* drained */
                }
            }
        }
        if (!given) {
            return_idler(w);
        }
    }
    /* Stop accepting now, so the other children (or the next
     * generation) take the new connections. */
    close_listeners();
    if (conns_exhausted()) {
        ctl_request('g');
    }
    return NULL;
}

/* Wraps a connected descriptor as httpd's socket, with its real address
 * family and the peer address already known; the pool's cleanup closes
 * it. */
static apr_status_t wrap_socket(apr_socket_t **sock, int fd,
                                struct sockaddr_storage *peer, apr_pool_t *p)
{
    apr_os_sock_info_t info;

    memset(&info, 0, sizeof(info));
    info.os_sock = &fd;
    info.local = NULL;           /* looked up only if someone asks */
    info.remote = (struct sockaddr *)peer;
    info.family = peer->ss_family;
    info.type = SOCK_STREAM;
    return apr_os_sock_make(sock, &info, p);
}

/* Serves one connection on worker thread 'tn'. */
static void serve_connection(apr_pool_t *ptrans, int tn, pc_tslot_t *ts,
                             int fd, pc_passed_t *passed)
{
    apr_socket_t *sock;
    apr_bucket_alloc_t *ba;
    ap_sb_handle_t *sbh;
    conn_rec *c;
    long conn_id = (long)child.slot * pc_conf->thread_limit + tn;

    if (wrap_socket(&sock, fd, passed ? &passed->peer : &ts->peer, ptrans)
        != APR_SUCCESS) {
        close(fd);
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
        ap_process_connection(c, sock);
        ap_lingering_close(c);
    }
    ts->busy_fd = -1;
}

/* Waits for a job; returns the entry's sock value, or PC_SOCK_IDLE when
 * the worker should exit. */
static int next_job(int tn, pc_tslot_t *ts, pc_passed_t *passed)
{
    int sock;

    pthread_mutex_lock(&child.mu);
    ts->sock = PC_SOCK_IDLE;
    child.idle[child.idle_count++] = tn;
    pthread_cond_signal(&child.idle_cv);
    while (ts->sock == PC_SOCK_IDLE && !child.workers_may_exit) {
        pthread_cond_wait(&ts->cv, &child.mu);
    }
    sock = ts->sock;
    if (sock == PC_SOCK_PASSED) {
        *passed = ts->passed;
    }
    pthread_mutex_unlock(&child.mu);
    return sock;
}

static void *APR_THREAD_FUNC worker_thread(apr_thread_t *thd, void *arg)
{
    int tn = (int)(apr_uintptr_t)arg;
    pc_tslot_t *ts = &child.table[tn];
    apr_allocator_t *allocator;
    apr_pool_t *ptrans;
    pc_passed_t passed;

    apr_allocator_create(&allocator);
    apr_allocator_max_free_set(allocator, ap_max_mem_free);
    apr_pool_create_ex(&ptrans, child.pchild, NULL, allocator);
    apr_allocator_owner_set(allocator, ptrans);
    apr_pool_tag(ptrans, "transaction");

    ap_update_child_status_from_indexes(child.slot, tn, SERVER_READY, NULL);
    for (;;) {
        int sock = next_job(tn, ts, &passed);

        if (sock == PC_SOCK_IDLE) {
            break;
        }
        if (sock == PC_SOCK_PASSED) {
            serve_connection(ptrans, tn, ts, passed.fd, &passed);
        }
        else {
            serve_connection(ptrans, tn, ts, sock, NULL);
        }
        apr_pool_clear(ptrans);
        if (child.limit_conns && apr_atomic_dec32(&child.conns_left) == 0) {
            ctl_request('g');
        }
        ap_update_child_status_from_indexes(child.slot, tn, SERVER_READY,
                                            NULL);
    }
    ap_update_child_status_from_indexes(child.slot, tn,
                                        child.listener_may_exit ?
                                        SERVER_GRACEFUL : SERVER_DEAD, NULL);
    apr_pool_destroy(ptrans);
    return NULL;
}

static void init_table(int n)
{
    int i;

    pthread_mutex_init(&child.mu, NULL);
    pthread_cond_init(&child.idle_cv, NULL);
    child.table = apr_pcalloc(child.pchild, n * sizeof(*child.table));
    child.idle = apr_pcalloc(child.pchild, n * sizeof(int));
    for (i = 0; i < n; i++) {
        child.table[i].sock = PC_SOCK_IDLE;
        child.table[i].busy_fd = -1;
        pthread_cond_init(&child.table[i].cv, NULL);
    }
}

static apr_thread_t **start_threads(apr_thread_t **listener)
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
    rv = ap_thread_create(listener, attr, listener_thread, NULL,
                          child.pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ALERT, rv, ap_server_conf,
                     "PC0405: cannot create the listener thread");
        clean_child_exit(APEXIT_CHILDSICK);
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
        /* Every child polls the one pipe; only one reads each byte. */
        apr_os_file_get(&podfd, child.pod->pod_in);
        fcntl(podfd, F_SETFL, fcntl(podfd, F_GETFL) | O_NONBLOCK);
    }
    for (;;) {
        char c;

        pfd[0].fd = child.ctl[0];
        pfd[0].events = POLLIN;
        pfd[1].fd = podfd;
        pfd[1].events = POLLIN;
        if (poll(pfd, podfd >= 0 ? 2 : 1, -1) == -1) {
            continue;
        }
        if ((pfd[0].revents & POLLIN) && read(child.ctl[0], &c, 1) == 1) {
            return c == 'g';
        }
        if (podfd >= 0 && (pfd[1].revents & POLLIN)) {
            int rv = ap_mpm_podx_check(child.pod);
            if (rv == AP_MPM_PODX_GRACEFUL || rv == AP_MPM_PODX_RESTART) {
                return rv == AP_MPM_PODX_GRACEFUL;
            }
        }
    }
}

static void stop_threads(int graceful, apr_thread_t *listener,
                         apr_thread_t **threads)
{
    int i;
    apr_status_t rv;

    pc_retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    pthread_mutex_lock(&child.mu);
    child.listener_may_exit = 1;
    pthread_cond_broadcast(&child.idle_cv);
    pthread_mutex_unlock(&child.mu);
    wake_listener();
    apr_thread_join(&rv, listener);

    pthread_mutex_lock(&child.mu);
    child.workers_may_exit = 1;
    for (i = 0; i < pc_conf->threads_per_child; i++) {
        pthread_cond_signal(&child.table[i].cv);
        if (!graceful && child.table[i].busy_fd >= 0) {
            /* Ends blocked reads and writes; the worker closes. */
            shutdown(child.table[i].busy_fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&child.mu);
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
    apr_signal(SIGTERM, ctl_signal);
    apr_signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
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
    pc_handoff_child_init(pool);
    pc_logs_child_init(pool);
    ap_reopen_scoreboard(child.pchild, NULL, 0);

    if (!pc_one_process) {
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
    if (ap_run_drop_privileges(child.pchild, ap_server_conf)) {
        clean_child_exit(APEXIT_CHILDFATAL);
    }
    if (make_pipe(child.ctl) == -1 || make_pipe(child.lwake) == -1) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, ap_server_conf,
                     "PC0408: cannot create the child's control pipes");
        clean_child_exit(APEXIT_CHILDSICK);
    }
}

void pc_child_main(int slot, int pool)
{
    apr_thread_t *listener, **threads;
    int graceful;

    child.pod = pc_pod;
    init_child(slot, pool);
    setup_signals();
    ap_run_child_init(child.pchild, ap_server_conf);

    child.limit_conns = ap_max_requests_per_child > 0;
    apr_atomic_set32(&child.conns_left, (apr_uint32_t)
                     (child.limit_conns ? ap_max_requests_per_child : 0));
    init_table(pc_conf->threads_per_child);
    threads = start_threads(&listener);
    pc_retained->mpm->mpm_state = AP_MPMQ_RUNNING;

    graceful = wait_for_stop();
    stop_threads(graceful, listener, threads);
    clean_child_exit(0);
}
